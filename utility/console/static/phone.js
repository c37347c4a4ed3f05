// The web phone's keypad (utility/console/phone.py). The page works without this script: the
// form posts every hop. (Its SMS list refreshes itself through console.js's data-refresh.)
(function () {
  "use strict";
  var form = document.querySelector("form.handset");
  if (!form) return;
  var entry = document.getElementById("entry");
  var keypad = form.querySelector(".keypad");

  // The keypad types into the entry, as a handset's keys do; the keyboard types there too.
  keypad.hidden = false;
  keypad.addEventListener("click", function (event) {
    var key = event.target.closest("button[data-key]");
    if (!key || !entry) return;
    entry.value = key.dataset.key === "back" ? entry.value.slice(0, -1) : entry.value + key.dataset.key;
    entry.focus();
  });

  // Escape hangs up, as the red key does.
  document.addEventListener("keydown", function (event) {
    var hangup = form.querySelector("button.hangup");
    if (event.key === "Escape" && hangup) hangup.click();
  });
})();
