/* Stand-in for the analytics provider's tag: it must never run before the visitor accepts analytics
   cookies (see cookie-consent.js). It counts the page view locally and marks that it ran. */
(function () {
  "use strict";
  window.fusionAnalytics = window.fusionAnalytics || { pageViews: 0 };
  window.fusionAnalytics.pageViews += 1;
  document.documentElement.setAttribute("data-analytics-loaded", "true");
})();
