// Starts ReDoc on /redoc. A file, not an inline script: the page's CSP forbids those. ReDoc's
// style elements get the nonce this response's CSP allows (data-nonce).
"use strict";
(function () {
  var root = document.getElementById("redoc");
  Redoc.init(root.getAttribute("data-openapi"),
             {disableSearch: true, nonce: root.getAttribute("data-nonce")}, root);
})();
