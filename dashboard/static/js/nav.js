/* The page bar's menu: on a narrow screen (under 600 px) the nav folds behind a "Menu" button, so the
 * bar's figures and the brand keep their line and every link is one tap away. Without this script the
 * button stays hidden and the nav wraps under the bar instead. */
(function () {
  "use strict";
  var button = document.querySelector(".rz-menu-toggle");
  var bar = document.querySelector(".rz-bar");
  if (!button || !bar) return;
  button.hidden = false;
  bar.classList.add("rz-foldable");
  function set(open) {
    button.setAttribute("aria-expanded", open ? "true" : "false");
    bar.classList.toggle("rz-nav-open", open);
  }
  button.addEventListener("click", function () { set(button.getAttribute("aria-expanded") !== "true"); });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && button.getAttribute("aria-expanded") === "true") { set(false); button.focus(); }
  });
  document.addEventListener("click", function (event) {  // a tap elsewhere folds it again
    if (!bar.contains(event.target)) set(false);
  });
})();
