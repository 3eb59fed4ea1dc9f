/* Search page: results as you type, and a combobox of completions.
 *
 * The server renders everything (templates _results_body, _facets, _active_filters…): this
 * script only asks /fragments/recherche for the fragment matching the current URL and swaps the
 * parts in, so there is one renderer. It keeps: typing updates the results at each key with the
 * older request aborted, the URL in the history (back/forward work), focus where it was (or on
 * the results' title), and the live region (#result-count) in place, its text updated.
 *
 * The box is an ARIA 1.2 combobox (list autocomplete): completions from /api/autocomplete
 * (words, then titles) in a listbox; ↑ ↓ move, Enter chooses, Escape closes (then clears);
 * the active option is given by aria-activedescendant. Completion text goes in by textContent.
 */
(function () {
  "use strict";

  var form = document.getElementById("search-form");
  var input = document.getElementById("q");
  var listbox = document.getElementById("q-listbox");
  var live = document.getElementById("result-count");
  if (!form || !input || !listbox || !live || !window.fetch || !window.AbortController ||
      !window.URLSearchParams || !window.DOMParser) {
    return;
  }

  var FRAGMENT = "/fragments/recherche";
  var SWAPPED = ["param-errors", "active-filters", "facets", "results-body"];
  var searchAbort = null;
  var completeAbort = null;
  var sequence = 0;
  var options = [];
  var active = -1;

  // --- URL <-> form ----------------------------------------------------------------------------

  function formQuery() {
    var params = new URLSearchParams();
    new URLSearchParams(new FormData(form)).forEach(function (value, key) {
      if (value !== "" && !(key === "sort" && value === "relevance")) {
        params.append(key, value);
      }
    });
    return params.toString();
  }

  function syncForm(query) {
    var params = new URLSearchParams(query);
    input.value = params.get("q") || "";
    var sort = document.getElementById("sort");
    if (sort) {
      sort.value = params.get("sort") || "relevance";
    }
    var hidden = document.getElementById("hidden-filters");
    if (hidden) {
      hidden.replaceChildren();
      ["tag", "collection", "category", "year", "date_from", "date_to"].forEach(function (name) {
        params.getAll(name).forEach(function (value) {
          var field = document.createElement("input");
          field.type = "hidden";
          field.name = name;
          field.value = value;
          hidden.appendChild(field);
        });
      });
    }
  }

  // --- fetching and swapping the server's fragment ----------------------------------------------

  function swap(html, focusId) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var hadFocus = SWAPPED.some(function (id) {
      var el = document.getElementById(id);
      return el && el.contains(document.activeElement);
    });
    SWAPPED.forEach(function (id) {
      var fresh = doc.getElementById(id);
      var old = document.getElementById(id);
      if (fresh && old) {
        old.replaceWith(document.importNode(fresh, true));
      }
    });
    var count = doc.getElementById("result-count");
    var text = count ? count.textContent : "";
    if (live.textContent !== text) {
      live.textContent = text;
    }
    if (focusId || hadFocus) {
      var target = null;
      if (focusId) {
        document.querySelectorAll("[data-focus-id]").forEach(function (el) {
          if (!target && el.getAttribute("data-focus-id") === focusId) {
            target = el;
          }
        });
      }
      (target || document.getElementById("results-title")).focus();
    }
  }

  function load(query, how) {
    how = how || {};
    if (searchAbort) {
      searchAbort.abort();
    }
    searchAbort = new AbortController();
    var mine = ++sequence;
    var url = query ? "/?" + query : "/";
    if (how.push) {
      history.pushState(null, "", url);
    } else if (how.replace !== false) {
      history.replaceState(null, "", url);
    }
    return fetch(FRAGMENT + (query ? "?" + query : ""), {
      signal: searchAbort.signal, headers: { Accept: "text/html" }, credentials: "same-origin"
    }).then(function (res) {
      return res.text();
    }).then(function (html) {
      if (mine !== sequence) {
        return;
      }
      swap(html, how.focusId);
      document.dispatchEvent(new CustomEvent("search:rendered", { detail: { query: query } }));
    }).catch(function (err) {
      if (err && err.name === "AbortError") {
        return;
      }
      live.textContent = "La recherche n’a pas abouti (connexion interrompue ?). Appuyez sur Entrée pour réessayer.";
    });
  }

  // --- the combobox ---------------------------------------------------------------------------

  input.setAttribute("role", "combobox");
  input.setAttribute("aria-autocomplete", "list");
  input.setAttribute("aria-expanded", "false");
  input.setAttribute("aria-controls", "q-listbox");

  function setActive(index) {
    active = index;
    options.forEach(function (opt, i) {
      opt.el.setAttribute("aria-selected", i === index ? "true" : "false");
    });
    if (index >= 0) {
      input.setAttribute("aria-activedescendant", options[index].el.id);
      options[index].el.scrollIntoView({ block: "nearest" });
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  }

  function close() {
    listbox.hidden = true;
    input.setAttribute("aria-expanded", "false");
    setActive(-1);
  }

  function open() {
    if (options.length) {
      listbox.hidden = false;
      input.setAttribute("aria-expanded", "true");
    }
  }

  function fill(items) {
    listbox.replaceChildren();
    options = [];
    items.forEach(function (item, i) {
      var li = document.createElement("li");
      li.id = "q-option-" + i;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", "false");
      li.className = "combo-option combo-option--" + (item.kind === "title" ? "title" : "term");
      if (item.kind === "title") {
        var kind = document.createElement("span");
        kind.className = "combo-kind";
        kind.textContent = "Document : ";
        li.appendChild(kind);
      }
      li.appendChild(document.createTextNode(String(item.text)));
      li.addEventListener("mousedown", function (event) {
        event.preventDefault();  // keep the focus in the box
      });
      li.addEventListener("click", function () {
        choose(i);
      });
      listbox.appendChild(li);
      options.push({ el: li, item: item });
    });
    setActive(-1);
    if (options.length && document.activeElement === input) {
      open();
    } else {
      close();
    }
  }

  function complete(text) {
    if (completeAbort) {
      completeAbort.abort();
    }
    if (!text.trim()) {
      fill([]);
      return;
    }
    completeAbort = new AbortController();
    fetch("/api/autocomplete?" + new URLSearchParams({ q: text }).toString(), {
      signal: completeAbort.signal, credentials: "same-origin"
    }).then(function (res) {
      return res.ok ? res.json() : { completions: [] };
    }).then(function (body) {
      if (input.value === text) {
        fill((body && body.completions) || []);
      }
    }).catch(function () { /* aborted or offline: the results still come */ });
  }

  function choose(index) {
    var item = options[index].item;
    close();
    if (item.kind === "title" && item.id) {
      window.location.assign("/documents/" + encodeURIComponent(item.id));
      return;
    }
    input.value = String(item.text);
    load(formQuery(), { push: true });
  }

  input.addEventListener("input", function () {
    load(formQuery());
    complete(input.value);
  });

  input.addEventListener("keydown", function (event) {
    var n = options.length;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      if (!n) {
        return;
      }
      event.preventDefault();
      if (listbox.hidden) {
        open();
      }
      var step = event.key === "ArrowDown" ? 1 : -1;
      setActive(active < 0 ? (step > 0 ? 0 : n - 1) : (active + step + n) % n);
    } else if (event.key === "Enter") {
      if (!listbox.hidden && active >= 0) {
        event.preventDefault();
        choose(active);
      } else {
        close();
      }
    } else if (event.key === "Escape") {
      if (!listbox.hidden) {
        event.preventDefault();
        close();
      } else if (input.value) {
        event.preventDefault();
        input.value = "";
        fill([]);
        load(formQuery());
      }
    }
  });

  input.addEventListener("blur", function () {
    close();
  });

  // --- the rest of the form, links inside the results ---------------------------------------------

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    close();
    load(formQuery(), { push: true, focusId: null });
  });

  var sort = document.getElementById("sort");
  if (sort) {
    sort.addEventListener("change", function () {
      load(formQuery(), { push: true });
    });
  }

  document.addEventListener("click", function (event) {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey ||
        event.shiftKey || event.altKey) {
      return;
    }
    var link = event.target.closest("a[href]");
    if (!link || !link.closest(".search-layout")) {
      return;
    }
    var url = new URL(link.href, window.location.href);
    if (url.origin !== window.location.origin || url.pathname !== "/") {
      return;  // a document page, the advanced search…: a normal navigation
    }
    event.preventDefault();
    var query = url.search.replace(/^\?/, "");
    syncForm(query);
    var focusId = link.getAttribute("data-focus-id");
    load(query, { push: true, focusId: focusId || "results-title" });
  });

  window.addEventListener("popstate", function () {
    var query = window.location.search.replace(/^\?/, "");
    syncForm(query);
    load(query, { replace: false });
  });
})();
