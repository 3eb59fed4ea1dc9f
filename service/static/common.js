/* Shared by the pages' scripts: loaded before them. */
(function () {
  "use strict";
  var MONTHS = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
    "septembre", "octobre", "novembre", "décembre"];

  /* "2024-03-08T…" → "8 mars 2024" (1 → "1er"), as the server-rendered pages write dates. */
  function frenchDate(value) {
    if (!value) {
      return "sans date";
    }
    var m = /^(\d{4})-(\d{2})-(\d{2})/.exec(value || "");
    if (!m) {
      return value || "";
    }
    var day = parseInt(m[3], 10);
    return (day === 1 ? "1er" : String(day)) + " " + MONTHS[parseInt(m[2], 10) - 1] + " " + m[1];
  }

  window.communiques = { frenchDate: frenchDate };
})();
