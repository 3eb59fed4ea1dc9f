/* Search page: as-you-type results through /api/search, on top of the server-rendered page.
 *
 * The page works without this script (GET form, links). With it, typing searches after a short
 * pause, stale requests are aborted, and facets, pagination and the suggestion update in place.
 * Only the API's title_html / snippet_html (escaped by the core, with <mark>) are inserted as
 * HTML; everything else goes through textContent.
 */
(function () {
  "use strict";
  var frenchDate = window.communiques.frenchDate;

  var form = document.getElementById("search-form");
  if (!form || !window.fetch || !window.AbortController || !window.URLSearchParams) {
    return;
  }

  var BASE = "/";
  var SIZE = 10;
  var MAX_WINDOW = 10000;
  var DEBOUNCE_MS = 150;
  var TAG_FACETS_SHOWN = 8;
  var COLLECTIONS = {
    communiques: "Communiqués de presse",
    actualites: "Actualités",
    evenements: "Événements"
  };
  var PARAM_ORDER = ["q", "tag", "collection", "category", "year", "date_from", "date_to", "sort", "page"];

  var input = document.getElementById("q");
  var sortSelect = document.getElementById("sort");
  var hiddenFilters = document.getElementById("hidden-filters");
  var section = document.querySelector(".results");
  var els = {
    title: document.getElementById("results-title"),
    count: document.getElementById("result-count"),
    error: document.getElementById("search-error"),
    suggestion: document.getElementById("suggestion"),
    notes: document.getElementById("notes"),
    results: document.getElementById("results"),
    empty: document.getElementById("empty-state"),
    pagination: document.getElementById("pagination"),
    facets: document.getElementById("facets"),
    paramErrors: document.getElementById("param-errors")
  };

  var controller = null;
  var timer = null;
  var tagLabels = {};

  // --- state <-> URL -------------------------------------------------------------------------

  function stateFrom(params) {
    var page = parseInt(params.get("page") || "1", 10);
    return {
      q: params.get("q") || "",
      tag: params.getAll("tag").filter(function (t) { return t !== ""; }),
      collection: params.get("collection") || "",
      category: params.get("category") || "",
      year: params.get("year") || "",
      date_from: params.get("date_from") || "",
      date_to: params.get("date_to") || "",
      sort: params.get("sort") || "relevance",
      page: page > 0 ? page : 1
    };
  }

  function stateFromForm() {
    return stateFrom(new URLSearchParams(new FormData(form)));
  }

  function withChanges(state, changes) {
    var out = {};
    PARAM_ORDER.forEach(function (k) { out[k] = state[k]; });
    out.page = 1;
    Object.keys(changes || {}).forEach(function (k) { out[k] = changes[k]; });
    return out;
  }

  function toParams(state) {
    var params = new URLSearchParams();
    PARAM_ORDER.forEach(function (name) {
      var value = state[name];
      if (name === "tag") {
        value.forEach(function (t) { params.append("tag", t); });
      } else if (name === "sort" && value === "relevance") {
        return;
      } else if (name === "page" && value <= 1) {
        return;
      } else if (value !== "" && value !== null && value !== undefined) {
        params.append(name, String(value));
      }
    });
    return params;
  }

  function urlFor(state, changes) {
    var qs = toParams(withChanges(state, changes)).toString();
    return qs ? BASE + "?" + qs : BASE;
  }

  function syncForm(state) {
    if (input.value !== state.q) {
      input.value = state.q;
    }
    sortSelect.value = state.sort;
    while (hiddenFilters.firstChild) {
      hiddenFilters.removeChild(hiddenFilters.firstChild);
    }
    function add(name, value) {
      var h = document.createElement("input");
      h.type = "hidden";
      h.name = name;
      h.value = value;
      hiddenFilters.appendChild(h);
    }
    state.tag.forEach(function (t) { add("tag", t); });
    ["collection", "category", "year", "date_from", "date_to"].forEach(function (name) {
      if (state[name]) {
        add(name, state[name]);
      }
    });
  }

  // --- small builders ------------------------------------------------------------------------

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "className") {
        node.className = attrs[k];
      } else {
        node.setAttribute(k, attrs[k]);
      }
    });
    if (text !== undefined && text !== null) {
      node.textContent = text;
    }
    return node;
  }

  function srOnly(text) {
    return el("span", { className: "sr-only" }, text);
  }

  function clear(node) {
    while (node.firstChild) {
      node.removeChild(node.firstChild);
    }
  }

  function collectionLabel(value) {
    return COLLECTIONS[value] || value;
  }

  function formatCount(n) {
    return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, "\u202f");
  }

  function countText(total, q) {
    var n = formatCount(total);
    if (q.trim()) {
      var head = total === 0 ? "Aucun résultat" : total === 1 ? "1 résultat" : n + " résultats";
      return head + " pour « " + q.trim() + " »";
    }
    return total === 0 ? "Aucun document" : total === 1 ? "1 document" : n + " documents";
  }

  function pageNumbers(current, last) {
    var out = [];
    var n;
    if (last <= 7) {
      for (n = 1; n <= last; n++) { out.push(n); }
      return out;
    }
    var keep = [1, last];
    for (n = Math.max(1, current - 2); n <= Math.min(last, current + 2); n++) { keep.push(n); }
    keep = keep.filter(function (v, i) { return keep.indexOf(v) === i; }).sort(function (a, b) { return a - b; });
    var prev = 0;
    keep.forEach(function (v) {
      if (v - prev > 1) { out.push(null); }
      out.push(v);
      prev = v;
    });
    return out;
  }

  // --- rendering (the same markup as the server's templates) ---------------------------------

  function resultItem(hit) {
    var li = el("li", { className: "result" });
    var h3 = el("h3", { className: "result-title" });
    var a = el("a", { href: "/documents/" + encodeURIComponent(hit.id) });
    a.innerHTML = hit.title_html; // escaped by the core; only <mark> added
    h3.appendChild(a);
    li.appendChild(h3);

    var meta = el("p", { className: "result-meta" });
    meta.appendChild(el("time", { datetime: (hit.date || "").slice(0, 10) }, frenchDate(hit.date)));
    meta.appendChild(el("span", { className: "sep", "aria-hidden": "true" }, " · "));
    meta.appendChild(el("span", { className: "badge" }, collectionLabel(hit.collection)));
    if (hit.published === false) {
      meta.appendChild(el("span", { className: "sep", "aria-hidden": "true" }, " · "));
      meta.appendChild(el("span", { className: "badge badge-draft" }, "Brouillon"));
    }
    if (hit.attachment_html) {
      meta.appendChild(el("span", { className: "sep", "aria-hidden": "true" }, " · "));
      meta.appendChild(el("span", { className: "attachment-match" }, "trouvé dans une pièce jointe"));
    }
    li.appendChild(meta);

    var snippet = el("p", { className: "result-snippet" });
    snippet.innerHTML = hit.snippet_html; // escaped by the core; only <mark> added
    li.appendChild(snippet);

    var shownTags = (hit.tags_canonical && hit.tags_canonical.length) ? hit.tags_canonical : hit.tags;
    if (shownTags && shownTags.length) {
      var tags = el("ul", { className: "tag-list", "aria-label": "Étiquettes" });
      shownTags.forEach(function (t) { tags.appendChild(el("li", { className: "tag" }, t)); });
      li.appendChild(tags);
    }
    return li;
  }

  function facetItem(name, f) {
    var li = el("li");
    var a = el("a", {
      className: "facet-link" + (f.active ? " is-active" : ""),
      href: f.href,
      "data-focus-id": name + ":" + f.value
    });
    if (f.active) {
      a.setAttribute("aria-current", "true");
    }
    var label = el("span", { className: "facet-label" });
    if (f.active) {
      label.appendChild(srOnly("Filtre actif, retirer : "));
    }
    label.appendChild(document.createTextNode(f.label));
    a.appendChild(label);
    a.appendChild(document.createTextNode(" "));
    var count = el("span", { className: "facet-count" }, String(f.count));
    count.appendChild(srOnly(" document" + (f.count > 1 ? "s" : "")));
    a.appendChild(count);
    li.appendChild(a);
    return li;
  }

  function facetItems(state, facets) {
    var out = {};
    ["tag", "collection", "year"].forEach(function (name) {
      var items = (facets[name] || []).map(function (f) {
        var active;
        var href;
        var label = f.label;
        if (name === "tag") {
          tagLabels[f.value] = f.label;
          active = state.tag.indexOf(f.value) !== -1;
          var tags = active
            ? state.tag.filter(function (t) { return t !== f.value; })
            : state.tag.concat([f.value]);
          href = urlFor(state, { tag: tags });
        } else {
          active = state[name] === f.value;
          var change = {};
          change[name] = active ? "" : f.value;
          href = urlFor(state, change);
          if (name === "collection") {
            label = collectionLabel(f.label);
          }
        }
        return { value: f.value, label: label, count: f.count, active: active, href: href };
      });
      if (name === "tag") {
        items = items.filter(function (i) { return i.active; })
          .concat(items.filter(function (i) { return !i.active; }));
      }
      out[name] = items;
    });
    return out;
  }

  function activeFilters(state) {
    var out = state.tag.map(function (t) {
      return {
        kind: "Étiquette",
        label: tagLabels[t] || t,
        href: urlFor(state, { tag: state.tag.filter(function (x) { return x !== t; }) })
      };
    });
    if (state.collection) {
      out.push({ kind: "Collection", label: collectionLabel(state.collection), href: urlFor(state, { collection: "" }) });
    }
    if (state.year) {
      out.push({ kind: "Année", label: state.year === "0" ? "sans date" : state.year, href: urlFor(state, { year: "" }) });
    }
    if (state.category) {
      out.push({ kind: "Catégorie", label: state.category, href: urlFor(state, { category: "" }) });
    }
    if (state.date_from) {
      out.push({ kind: "Depuis le", label: frenchDate(state.date_from), href: urlFor(state, { date_from: "" }) });
    }
    if (state.date_to) {
      out.push({ kind: "Jusqu’au", label: frenchDate(state.date_to), href: urlFor(state, { date_to: "" }) });
    }
    return out;
  }

  function renderFacets(state, facets) {
    var aside = els.facets;
    var wasOpen = !!aside.querySelector("details.facet-more[open]");
    var items = facetItems(state, facets);

    var active = aside.querySelector("#active-filters");
    var list = active.querySelector("ul");
    clear(list);
    var filters = activeFilters(state);
    filters.forEach(function (f, i) {
      var li = el("li");
      var a = el("a", { className: "chip", href: f.href, "data-focus-id": "remove:" + (i + 1) });
      a.appendChild(srOnly("Retirer le filtre "));
      a.appendChild(document.createTextNode(f.kind + " : " + f.label + " "));
      a.appendChild(el("span", { "aria-hidden": "true" }, "×"));
      li.appendChild(a);
      list.appendChild(li);
    });
    active.hidden = filters.length === 0;

    ["tag", "collection", "year"].forEach(function (name) {
      var sec = aside.querySelector('.facet[data-facet="' + name + '"]');
      var values = items[name];
      var ul = sec.querySelector(".facet-list");
      clear(ul);
      var old = sec.querySelector("details.facet-more");
      if (old) {
        sec.removeChild(old);
      }
      var shown = name === "tag" ? values.slice(0, TAG_FACETS_SHOWN) : values;
      shown.forEach(function (f) { ul.appendChild(facetItem(name, f)); });
      if (name === "tag" && values.length > TAG_FACETS_SHOWN) {
        var details = el("details", { className: "facet-more" });
        details.appendChild(el("summary", {}, "Voir plus d’étiquettes (" + (values.length - TAG_FACETS_SHOWN) + ")"));
        var more = el("ul", { className: "facet-list" });
        values.slice(TAG_FACETS_SHOWN).forEach(function (f) { more.appendChild(facetItem(name, f)); });
        details.appendChild(more);
        details.open = wasOpen;
        sec.appendChild(details);
      }
      sec.hidden = values.length === 0;
    });
  }

  function renderPagination(state, total) {
    var nav = els.pagination;
    clear(nav);
    var last = Math.max(1, Math.min(Math.ceil(total / SIZE), Math.floor(MAX_WINDOW / SIZE)));
    nav.hidden = last <= 1;
    if (last <= 1) {
      return;
    }
    var ul = el("ul");
    function link(n, text, current) {
      var li = el("li");
      var a = el("a", { className: "page-link", href: urlFor(state, { page: n }), "data-page": String(n) });
      if (current) {
        a.setAttribute("aria-current", "page");
      }
      if (text) {
        a.textContent = text;
      } else {
        a.appendChild(srOnly("Page "));
        a.appendChild(document.createTextNode(String(n)));
      }
      li.appendChild(a);
      ul.appendChild(li);
    }
    if (state.page > 1) {
      link(state.page - 1, "‹ Précédente");
    }
    pageNumbers(state.page, last).forEach(function (n) {
      if (n === null) {
        ul.appendChild(el("li", { className: "page-gap", "aria-hidden": "true" }, "…"));
      } else {
        link(n, "", n === state.page);
      }
    });
    if (state.page < last) {
      link(state.page + 1, "Suivante ›");
    }
    nav.appendChild(ul);
  }

  function showError(message) {
    clear(els.error);
    var p = el("p", {}, "Cette recherche n’a pas pu être lancée : ");
    p.appendChild(el("span", { className: "error-detail" }, message));
    els.error.appendChild(p);
    els.error.hidden = false;
    els.count.textContent = "";
    clear(els.results);
    els.empty.hidden = true;
    els.suggestion.hidden = true;
    els.notes.hidden = true;
    els.pagination.hidden = true;
  }

  function render(data, state) {
    els.error.hidden = true;
    clear(els.error);
    if (els.paramErrors) {
      clear(els.paramErrors);
    }

    els.count.textContent = countText(data.total, state.q);

    clear(els.suggestion);
    if (data.suggestion) {
      els.suggestion.appendChild(document.createTextNode("Essayez avec "));
      els.suggestion.appendChild(el("a", { href: urlFor(state, { q: data.suggestion }), "data-q": data.suggestion }, data.suggestion.trim()));
    }
    els.suggestion.hidden = !data.suggestion;

    clear(els.notes);
    (data.notes || []).forEach(function (n) { els.notes.appendChild(el("li", {}, n)); });
    els.notes.hidden = !(data.notes && data.notes.length);

    clear(els.results);
    els.results.setAttribute("start", String((state.page - 1) * SIZE + 1));
    data.hits.forEach(function (hit) { els.results.appendChild(resultItem(hit)); });
    els.empty.hidden = data.total !== 0;

    renderPagination(state, data.total);
    renderFacets(state, data.facets || {});
  }

  // --- searching -----------------------------------------------------------------------------

  function apiUrl(state) {
    var params = toParams(state);
    params.append("size", String(SIZE));
    return "/api/search?" + params.toString();
  }

  function detailOf(body, status) {
    if (body && typeof body.detail === "string") {
      return body.detail;
    }
    return "le service a répondu " + status;
  }

  function restoreFocus(focus) {
    if (!focus) {
      return;
    }
    var target = null;
    if (focus !== "results") {
      target = document.querySelector('[data-focus-id="' + focus.replace(/["\\]/g, "\\$&") + '"]');
    }
    if (!target || target.offsetParent === null) {
      target = els.title;
      target.scrollIntoView({ block: "start" });
    }
    target.focus();
  }

  function search(state, opts) {
    opts = opts || {};
    if (controller) {
      controller.abort();
    }
    var mine = new AbortController();
    controller = mine;
    section.setAttribute("aria-busy", "true");
    fetch(apiUrl(state), { signal: mine.signal, headers: { Accept: "application/json" } })
      .then(function (r) {
        return r.json().catch(function () { return null; }).then(function (body) {
          return { ok: r.ok, status: r.status, body: body };
        });
      })
      .then(function (res) {
        if (mine !== controller) {
          return;
        }
        if (res.ok && res.body) {
          render(res.body, state);
        } else {
          showError(detailOf(res.body, res.status));
        }
        var url = urlFor(state, { page: state.page });
        if (opts.history === "push" && url !== location.pathname + location.search) {
          history.pushState(null, "", url);
        } else if (opts.history !== "none") {
          history.replaceState(null, "", url);
        }
        document.title = (state.q.trim() ? state.q.trim() + " — " : "") + "Recherche — Communiqués de presse de l’État";
        restoreFocus(opts.focus);
      })
      .catch(function (err) {
        if (err && err.name === "AbortError") {
          return;
        }
        if (mine === controller) {
          showError("le service de recherche ne répond pas");
        }
      })
      .then(function () {
        if (mine === controller) {
          section.removeAttribute("aria-busy");
        }
      });
  }

  function searchFromForm(opts) {
    clearTimeout(timer);
    search(stateFromForm(), opts);
  }

  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () { search(stateFromForm(), { history: "replace" }); }, DEBOUNCE_MS);
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    searchFromForm({ history: "push" });
  });

  sortSelect.addEventListener("change", function () {
    searchFromForm({ history: "push" });
  });

  // Facets, filter chips, pagination and the suggestion are links: follow them in place.
  document.addEventListener("click", function (event) {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey ||
        event.shiftKey || event.altKey) {
      return;
    }
    var a = event.target.closest ? event.target.closest("a") : null;
    if (!a || !(a.matches(".facet-link, .chip, .page-link") || a.parentNode === els.suggestion)) {
      return;
    }
    var url = new URL(a.href, location.href);
    if (url.origin !== location.origin || url.pathname !== BASE) {
      return;
    }
    event.preventDefault();
    var state = stateFrom(url.searchParams);
    syncForm(state);
    var focus = a.getAttribute("data-focus-id");
    if (a.classList.contains("page-link") || (focus && focus.indexOf("remove:") === 0)) {
      focus = "results";
    } else if (a.parentNode === els.suggestion) {
      focus = null;
      input.focus();
    }
    clearTimeout(timer);
    search(state, { history: "push", focus: focus });
  });

  window.addEventListener("popstate", function () {
    var state = stateFrom(new URLSearchParams(location.search));
    syncForm(state);
    clearTimeout(timer);
    search(state, { history: "none" });
  });

  // Labels of the tags already on screen, for the active-filter chips.
  Array.prototype.forEach.call(document.querySelectorAll('.facet[data-facet="tag"] .facet-link'), function (a) {
    var id = a.getAttribute("data-focus-id") || "";
    var label = a.querySelector(".facet-label");
    if (id.indexOf("tag:") === 0 && label) {
      var text = label.lastChild ? label.lastChild.textContent : label.textContent;
      tagLabels[id.slice(4)] = text;
    }
  });
}());
