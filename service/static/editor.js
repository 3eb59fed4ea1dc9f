/* Tag editor: suggestions from /api/tags/suggest, accept / reject, feedback, front-matter YAML.
 *
 * Everything from the API is written with textContent: tag names and reasons are never markup.
 */
(function () {
  "use strict";
  var frenchDate = window.communiques.frenchDate;

  var form = document.getElementById("editor-form");
  if (!form || !window.fetch) {
    return;
  }


  var titleInput = document.getElementById("ed-title");
  var textInput = document.getElementById("ed-text");
  var kInput = document.getElementById("ed-k");
  var docIdInput = document.getElementById("ed-doc-id");
  var submitButton = form.querySelector('button[type="submit"]');
  var status = document.getElementById("editor-status");
  var section = document.getElementById("suggestions");
  var list = document.getElementById("tag-suggestions");
  var modelInfo = document.getElementById("model-info");
  var yamlOut = document.getElementById("yaml-output");
  var copyButton = document.getElementById("copy-yaml");
  var copyStatus = document.getElementById("copy-status");
  var sendButton = document.getElementById("send-feedback");
  var feedbackStatus = document.getElementById("feedback-status");

  var order = [];       // suggested tags, in the model's order
  var decisions = {};   // tag -> "accepted" | "rejected"
  var draft = null;     // the title and text the suggestions were made for

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined && text !== null) {
      node.textContent = text;
    }
    return node;
  }

  function say(node, message, kind) {
    node.textContent = message;
    node.classList.toggle("is-error", kind === "error");
    node.classList.toggle("is-ok", kind === "ok");
  }

  function detailOf(body) {
    if (!body) {
      return "";
    }
    if (typeof body.detail === "string") {
      return body.detail;
    }
    if (Array.isArray(body.detail)) {
      return body.detail.map(function (d) { return d && d.msg ? d.msg : String(d); }).join(" ; ");
    }
    return "";
  }

  function postJson(url, payload) {
    return fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(payload)
    }).then(function (r) {
      return r.json().catch(function () { return null; }).then(function (body) {
        return { ok: r.ok, status: r.status, body: body };
      });
    });
  }

  // --- YAML ----------------------------------------------------------------------------------

  var RESERVED = /^(?:true|false|yes|no|on|off|null|~|y|n)$/i;
  var PLAIN = /^[0-9A-Za-z\u00C0-\u024F][^:#\n\r"'[\]{},&*!|>%@`]*$/;

  function yamlScalar(tag) {
    if (PLAIN.test(tag) && !RESERVED.test(tag) && !/\s$/.test(tag) && isNaN(Number(tag))) {
      return tag;
    }
    return JSON.stringify(tag); // a JSON string is a valid double-quoted YAML scalar
  }

  function accepted() {
    return order.filter(function (t) { return decisions[t] === "accepted"; });
  }

  function rejected() {
    return order.filter(function (t) { return decisions[t] === "rejected"; });
  }

  function yaml() {
    var tags = accepted();
    if (!tags.length) {
      return "tags: []";
    }
    return "tags:\n" + tags.map(function (t) { return "- " + yamlScalar(t); }).join("\n");
  }

  function updateYaml() {
    yamlOut.textContent = yaml();
    say(copyStatus, "");
  }

  // --- suggestions ---------------------------------------------------------------------------

  function reasonText(r) {
    if (typeof r === "string" || typeof r === "number") {
      return String(r);
    }
    if (r && typeof r === "object") {
      return String(r.word || r.term || r.token || r.text || r.feature || r.name || JSON.stringify(r));
    }
    return "";
  }

  function percent(score) {
    var s = Number(score) || 0;
    var p = s <= 1 ? s * 100 : s;
    return Math.max(0, Math.min(100, Math.round(p)));
  }

  function setDecision(tag, value, item) {
    decisions[tag] = decisions[tag] === value ? undefined : value;
    item.classList.toggle("is-accepted", decisions[tag] === "accepted");
    item.classList.toggle("is-rejected", decisions[tag] === "rejected");
    item.querySelector(".accept").setAttribute("aria-pressed", String(decisions[tag] === "accepted"));
    item.querySelector(".reject").setAttribute("aria-pressed", String(decisions[tag] === "rejected"));
    updateYaml();
    say(feedbackStatus, "");
  }

  function suggestionItem(s, index) {
    var tag = String(s.tag);
    var pct = percent(s.score);
    var item = el("li", "tag-suggestion");
    item.setAttribute("data-tag", tag);

    var head = el("div", "tag-head");
    var nameId = "tag-name-" + index;
    var name = el("h3", "tag-name", tag);
    name.id = nameId;
    head.appendChild(name);

    var confidence = el("div", "confidence");
    var meter = document.createElement("meter");
    meter.min = 0;
    meter.max = 100;
    meter.low = 40;
    meter.high = 70;
    meter.optimum = 100;
    meter.value = pct;
    meter.setAttribute("aria-label", "Confiance pour " + tag);
    meter.textContent = pct + " %";
    confidence.appendChild(meter);
    confidence.appendChild(el("span", "pct", pct + " %"));
    head.appendChild(confidence);
    item.appendChild(head);

    var reasons = Array.isArray(s.reasons) ? s.reasons : (s.reasons ? [s.reasons] : []);
    var words = reasons.map(reasonText).filter(function (w) { return w; });
    var p = el("p", "reasons");
    if (words.length) {
      p.appendChild(document.createTextNode("Mots déclencheurs : "));
      words.forEach(function (w, i) {
        p.appendChild(el("span", "reason", w));
        if (i < words.length - 1) {
          p.appendChild(document.createTextNode(" "));
        }
      });
    } else {
      p.textContent = "Aucun mot déclencheur indiqué.";
    }
    item.appendChild(p);

    var group = el("div", "decision");
    group.setAttribute("role", "group");
    group.setAttribute("aria-labelledby", nameId);
    var accept = el("button", "fr-btn fr-btn--sm fr-btn--secondary accept", "Accepter");
    accept.type = "button";
    accept.setAttribute("aria-pressed", "false");
    accept.setAttribute("aria-describedby", nameId);
    var reject = el("button", "fr-btn fr-btn--sm fr-btn--tertiary reject", "Refuser");
    reject.type = "button";
    reject.setAttribute("aria-pressed", "false");
    reject.setAttribute("aria-describedby", nameId);
    accept.addEventListener("click", function () { setDecision(tag, "accepted", item); });
    reject.addEventListener("click", function () { setDecision(tag, "rejected", item); });
    group.appendChild(accept);
    group.appendChild(reject);
    item.appendChild(group);
    return item;
  }

  function render(body) {
    var tags = (body && Array.isArray(body.tags)) ? body.tags : [];
    order = [];
    decisions = {};
    while (list.firstChild) {
      list.removeChild(list.firstChild);
    }
    tags.forEach(function (s, i) {
      if (s && s.tag !== undefined && order.indexOf(String(s.tag)) === -1) {
        order.push(String(s.tag));
        list.appendChild(suggestionItem(s, i));
      }
    });
    var model = body && body.model ? body.model : null;
    var info = "";
    if (model) {
      info = "Suggestions apprises des étiquettes déjà posées sur les documents du site";
      if (model.trained_at) {
        info += " (mises à jour le " + frenchDate(String(model.trained_at)) + ")";
      }
      info += ". Vérifiez chacune avant de l’accepter.";
    }
    modelInfo.textContent = info;
    section.hidden = false;
    updateYaml();
    say(feedbackStatus, "");
    if (order.length) {
      say(status, order.length + (order.length > 1 ? " étiquettes suggérées." : " étiquette suggérée.") +
        " Acceptez ou refusez chacune.", "ok");
    } else {
      say(status, "Aucune étiquette n’est proposée pour ce texte.");
    }
  }

  function failure(res) {
    var detail = detailOf(res.body);
    if (res.status === 503) {
      return "Suggestion indisponible : aucun modèle d’étiquettes n’est chargé sur le serveur (503)" +
        (detail ? " — " + detail : "") + ".";
    }
    if (res.status === 404 || res.status === 405) {
      return "Le service de suggestion d’étiquettes n’est pas disponible sur ce serveur (" + res.status + ").";
    }
    if (res.status === 422 || res.status === 400 || res.status === 413) {
      return "Texte refusé par le service : " + (detail || "requête invalide") + ".";
    }
    return "Le service a répondu " + res.status + (detail ? " : " + detail : "") + ".";
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var title = titleInput.value.trim();
    var text = textInput.value.trim();
    if (!title && !text) {
      say(status, "Saisissez au moins un titre ou un texte.", "error");
      titleInput.focus();
      return;
    }
    var k = parseInt(kInput.value, 10);
    k = isNaN(k) ? 8 : Math.max(1, Math.min(20, k));
    draft = { title: title, text: text };
    submitButton.disabled = true;
    say(status, "Analyse du texte en cours…");
    postJson("/api/tags/suggest", { title: title, text: text, k: k })
      .then(function (res) {
        if (res.ok) {
          render(res.body);
        } else {
          section.hidden = true;
          say(status, failure(res), "error");
        }
      })
      .catch(function () {
        say(status, "Le service de suggestion ne répond pas.", "error");
      })
      .then(function () {
        submitButton.disabled = false;
      });
  });

  sendButton.addEventListener("click", function () {
    var yes = accepted();
    var no = rejected();
    if (!draft || (!yes.length && !no.length)) {
      say(feedbackStatus, "Acceptez ou refusez au moins une étiquette.", "error");
      return;
    }
    var payload = { title: draft.title, text: draft.text, accepted: yes, rejected: no };
    var docId = docIdInput.value.trim();
    if (docId) {
      payload.doc_id = docId;
    }
    sendButton.disabled = true;
    say(feedbackStatus, "Envoi…");
    postJson("/api/tags/feedback", payload)
      .then(function (res) {
        if (res.ok) {
          say(feedbackStatus, "Merci : vos choix sont enregistrés (" + yes.length + " acceptée" +
            (yes.length > 1 ? "s" : "") + ", " + no.length + " refusée" + (no.length > 1 ? "s" : "") + ").", "ok");
        } else if (res.status === 401 || res.status === 403) {
          say(feedbackStatus, "Vos choix n’ont pas été enregistrés : seuls les éditeurs connectés peuvent les enregistrer (lien « Se connecter » en haut de la page).", "error");
        } else {
          say(feedbackStatus, "Vos choix n’ont pas été enregistrés : " + (detailOf(res.body) || res.status) + ".", "error");
        }
      })
      .catch(function () {
        say(feedbackStatus, "Vos choix n’ont pas été enregistrés : le service ne répond pas.", "error");
      })
      .then(function () {
        sendButton.disabled = false;
      });
  });

  function copyFallback(text) {
    var range = document.createRange();
    range.selectNodeContents(yamlOut);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    var ok = false;
    try {
      ok = document.execCommand("copy");
    } catch (e) {
      ok = false;
    }
    return ok ? Promise.resolve() : Promise.reject(new Error(text));
  }

  copyButton.addEventListener("click", function () {
    var text = yaml();
    var copy = navigator.clipboard && navigator.clipboard.writeText
      ? navigator.clipboard.writeText(text).catch(function () { return copyFallback(text); })
      : copyFallback(text);
    copy.then(function () {
      say(copyStatus, "YAML copié dans le presse-papiers.", "ok");
    }, function () {
      say(copyStatus, "Copie impossible : sélectionnez le texte ci-dessus et copiez-le.", "error");
    });
  });
}());
