// Keeps an inbox page current: when the node reports activity, reload the
// page, unless the reviewer is typing a note, in which case show a banner.
(function () {
  "use strict";
  var script = document.currentScript;
  var from = script && script.getAttribute("data-from");
  if (!window.EventSource || from === null) { return; }
  var relevant = ["proposal_opened", "response_counted", "proposal_closed", "human_decided",
                  "human_resolved", "outcome_recorded", "trust_updated"];
  var pending = null;
  function busy() {
    var el = document.activeElement;
    return el && el.tagName === "TEXTAREA" && el.value.length > 0;
  }
  function refresh() {
    pending = null;
    if (busy()) {
      document.getElementById("live-banner").hidden = false;
    } else {
      window.location.reload();
    }
  }
  var source = new EventSource("/v1/events?from=" + encodeURIComponent(from));
  relevant.forEach(function (name) {
    source.addEventListener(name, function () {
      if (pending === null) { pending = window.setTimeout(refresh, 250); }
    });
  });
  document.documentElement.setAttribute("data-live", "connecting");
  source.onopen = function () { document.documentElement.setAttribute("data-live", "open"); };
})();
