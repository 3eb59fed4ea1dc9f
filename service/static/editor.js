/* Tag editor: suggestions from /api/tags/suggest (the confident ones pre-selected, the others as
 * "autres possibilités"), accept / reject, tags added by hand (autocomplete over the vocabulary
 * of /api/tags, shown as dismissible tags), feedback, front-matter YAML.
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
  var others = document.getElementById("other-suggestions");
  var noConfident = document.getElementById("no-confident");
  var addInput = document.getElementById("ed-add-tag");
  var addButton = document.getElementById("add-tag");
  var addedList = document.getElementById("added-tags");
  var addStatus = document.getElementById("add-status");
  var datalist = document.getElementById("tag-vocabulary");
  var modelInfo = document.getElementById("model-info");
  var yamlOut = document.getElementById("yaml-output");
  var copyButton = document.getElementById("copy-yaml");
  var copyStatus = document.getElementById("copy-status");
  var sendButton = document.getElementById("send-feedback");
  var feedbackStatus = document.getElementById("feedback-status");

  var order = [];       // suggested tags, in the model's order
  var decisions = {};   // tag -> "accepted" | "rejected"
  var added = [];       // tags added by hand (labels)
  var draft = null;     // the title and text the suggestions were made for
  var vocabulary = {};  // folded label, variant or alias -> vocabulary entry
  var byKey = {};       // tag key -> vocabulary entry

  function fold(text) {
    return String(text).normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase()
      .replace(/[^0-9a-z]+/g, " ").trim();
  }

  function loadVocabulary() {
    fetch("/api/tags", { headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (!body || !Array.isArray(body.tags)) {
          return;
        }
        var seen = {};
        body.tags.forEach(function (entry) {
          byKey[entry.key] = entry;
          [entry.label].concat(entry.variants || [], entry.aliases || []).forEach(function (name) {
            var f = fold(name);
            if (!f || vocabulary[f]) {
              return;
            }
            vocabulary[f] = entry;
            if (!seen[name]) {
              seen[name] = true;
              var option = document.createElement("option");
              option.value = name;
              if (name !== entry.label) {
                option.label = entry.label;
              }
              datalist.appendChild(option);
            }
          });
        });
      })
      .catch(function () { /* the page works without autocomplete */ });
  }

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

  function chosen() {
    var out = accepted();
    added.forEach(function (t) {
      if (out.indexOf(t) === -1) {
        out.push(t);
      }
    });
    return out;
  }

  function rejected() {
    return order.filter(function (t) { return decisions[t] === "rejected"; });
  }

  function yaml() {
    var tags = chosen();
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

  // The reasons shown as the draft's words, in this order, and what each is called.
  var SIGNAL_NAMES = { label: "nommée dans le texte", name_words: "mots de son nom",
    linear: "mots du texte" };

  function reasonsOf(s) {
    var p = el("p", "reasons");
    var explanations = Array.isArray(s.explanations) ? s.explanations : [];
    if (!explanations.length && Array.isArray(s.reasons)) {
      explanations = s.reasons.map(function (r) { return { signal: "linear", text: reasonText(r) }; });
    }
    var groups = { neighbour: [] };
    Object.keys(SIGNAL_NAMES).forEach(function (signal) { groups[signal] = []; });
    explanations.forEach(function (r) {
      if (r && groups[r.signal]) {
        groups[r.signal].push(r);
      }
    });
    var parts = 0;
    Object.keys(SIGNAL_NAMES).forEach(function (signal) {
      if (!groups[signal].length) {
        return;
      }
      var part = el("span", "reason-group reason-" + signal);
      part.appendChild(document.createTextNode((parts ? " · " : "") + SIGNAL_NAMES[signal] + " : "));
      groups[signal].forEach(function (r, i) {
        part.appendChild(el("span", "reason", r.text));
        if (i < groups[signal].length - 1) {
          part.appendChild(document.createTextNode(" "));
        }
      });
      p.appendChild(part);
      parts += 1;
    });
    groups.neighbour.forEach(function (r) {
      var part = el("span", "reason-group reason-neighbour");
      part.appendChild(document.createTextNode((parts ? " · " : "") + "comme le document "));
      var a = el("a", "", "« " + (r.title || r.doc_id) + " »");
      a.href = r.url || ("/documents/" + encodeURIComponent(r.doc_id));
      part.appendChild(a);
      p.appendChild(part);
      parts += 1;
    });
    if (!parts) {
      p.textContent = "Aucune raison particulière : étiquette fréquente sur des textes proches.";
    }
    return p;
  }

  function usageOf(s) {
    var entry = byKey[s.key];
    if (!entry) {
      return null;
    }
    var p = el("p", "tag-usage");
    p.appendChild(document.createTextNode("Employée dans " + entry.count + " document" +
      (entry.count > 1 ? "s" : "") + ((entry.examples || []).length ? ", par exemple " : ".")));
    (entry.examples || []).forEach(function (ex, i) {
      var a = el("a", "", ex.title || ex.id);
      a.href = ex.url;
      p.appendChild(a);
      p.appendChild(document.createTextNode(i < entry.examples.length - 1 ? " ; " : "."));
    });
    return p;
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
    var item = el("li", "tag-suggestion" + (s.confident ? " is-confident" : ""));
    item.setAttribute("data-tag", tag);
    item.setAttribute("data-confident", s.confident ? "true" : "false");

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

    item.appendChild(reasonsOf(s));
    var usage = usageOf(s);
    if (usage) {
      item.appendChild(usage);
    }

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
    if (s.confident) {
      decisions[tag] = "accepted";
      item.classList.add("is-accepted");
      accept.setAttribute("aria-pressed", "true");
    }
    return item;
  }

  function render(body) {
    var tags = (body && Array.isArray(body.tags)) ? body.tags : [];
    order = [];
    decisions = {};
    [list, others].forEach(function (ol) {
      while (ol.firstChild) {
        ol.removeChild(ol.firstChild);
      }
    });
    var sure = 0;
    tags.forEach(function (s, i) {
      if (s && s.tag !== undefined && order.indexOf(String(s.tag)) === -1) {
        order.push(String(s.tag));
        (s.confident ? list : others).appendChild(suggestionItem(s, i));
        sure += s.confident ? 1 : 0;
      }
    });
    noConfident.hidden = sure > 0;
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
      say(status, order.length + (order.length > 1 ? " étiquettes suggérées" : " étiquette suggérée") +
        ", dont " + sure + " avec confiance (présélectionnée" + (sure > 1 ? "s" : "") +
        "). Acceptez ou refusez chacune.", "ok");
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
    k = isNaN(k) ? 6 : Math.max(1, Math.min(20, k));
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
    var byHand = added.filter(function (t) { return yes.indexOf(t) === -1; });
    if (!draft || (!yes.length && !no.length && !byHand.length)) {
      say(feedbackStatus, "Acceptez, refusez ou ajoutez au moins une étiquette.", "error");
      return;
    }
    var payload = { title: draft.title, text: draft.text, accepted: yes, rejected: no, added: byHand };
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
            (yes.length > 1 ? "s" : "") + ", " + no.length + " refusée" + (no.length > 1 ? "s" : "") +
            ", " + byHand.length + " ajoutée" + (byHand.length > 1 ? "s" : "") + ").", "ok");
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

  // --- tags added by hand -------------------------------------------------------------------

  function renderAdded() {
    while (addedList.firstChild) {
      addedList.removeChild(addedList.firstChild);
    }
    added.forEach(function (tag) {
      var li = el("li");
      var known = vocabulary[fold(tag)];
      var button = el("button", "fr-tag fr-tag--dismiss added-tag", tag + (known ? "" : " (nouvelle)"));
      button.type = "button";
      button.setAttribute("aria-label", "Retirer " + tag);
      button.title = known ? "Employée dans " + known.count + " document" + (known.count > 1 ? "s" : "") :
        "Nouvelle étiquette : elle n’est pas encore dans le vocabulaire";
      button.addEventListener("click", function () {
        added = added.filter(function (t) { return t !== tag; });
        renderAdded();
        updateYaml();
        say(addStatus, "Étiquette « " + tag + " » retirée.");
        addInput.focus();
      });
      li.appendChild(button);
      addedList.appendChild(li);
    });
  }

  function addTag() {
    var raw = addInput.value.replace(/\s+/g, " ").trim();
    if (!raw) {
      say(addStatus, "Saisissez une étiquette.", "error");
      return;
    }
    var entry = vocabulary[fold(raw)];
    var tag = entry ? entry.label : raw;
    if (added.indexOf(tag) !== -1 || decisions[tag] === "accepted") {
      say(addStatus, "« " + tag + " » est déjà retenue.");
    } else {
      added.push(tag);
      say(addStatus, entry ? "Étiquette « " + tag + " » ajoutée." :
        "Nouvelle étiquette « " + tag + " » ajoutée.", "ok");
    }
    addInput.value = "";
    renderAdded();
    updateYaml();
  }

  addButton.addEventListener("click", addTag);
  addInput.addEventListener("keydown", function (event) {
    if (event.key === "Enter") {
      event.preventDefault();
      addTag();
    }
  });
  loadVocabulary();

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
