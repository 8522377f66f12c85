// Example extension: every page-level script runs once when the page loads.
// It marks the document so that a test (or you, in the browser's console) can see the script ran.
(function () {
    function mark() {
        document.documentElement.dataset.exampleExtension = "loaded";
    }
    if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", mark);
    } else {
        mark();
    }
})();
