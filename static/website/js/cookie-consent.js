/* Cookie consent: records the visitor's choice and loads analytics only after "Accept".
   The analytics script is not in the page until then (the server renders it only when the consent
   cookie already says "accepted"). Without script the banner's form still posts and comes back. */
(function () {
  "use strict";

  function loadAnalytics(src) {
    if (document.querySelector("script[data-analytics]")) {
      return;
    }
    var script = document.createElement("script");
    script.src = src;
    script.defer = true;
    script.setAttribute("data-analytics", "");
    document.head.appendChild(script);
  }

  function start() {
    var banner = document.getElementById("cookie-banner");
    if (!banner) {
      return;
    }
    var form = banner.querySelector("form");
    var failure = banner.querySelector(".cookie-error");

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var data = new FormData(form, event.submitter);
      fetch(form.action, {
        method: "POST",
        body: data,
        credentials: "same-origin",
        headers: { Accept: "application/json" }
      })
        .then(function (response) {
          if (!response.ok) {
            throw new Error("cookie choice not saved: " + response.status);
          }
          return response.json();
        })
        .then(function (result) {
          failure.hidden = true;
          banner.hidden = true;
          document.querySelectorAll("[data-cookie-choice]").forEach(function (node) {
            node.textContent = result.choice === "accepted" ? "analytics accepted" : "analytics refused";
          });
          if (result.choice === "accepted") {
            loadAnalytics(banner.getAttribute("data-analytics-src"));
          }
        })
        .catch(function () {
          failure.hidden = false;
        });
    });

    document.querySelectorAll("[data-cookie-settings]").forEach(function (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        banner.hidden = false;
        banner.querySelector("button").focus();
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
