// A1111's script.js helpers that extensions' javascript/*.js call, loaded before them: gradioApp(),
// onUiLoaded / onUiUpdate / onAfterUiUpdate / onOptionsChanged / onUiTabChange, updateInput(),
// get_uiCurrentTab(), get_uiCurrentTabContent(), get_tab_index(), and the globals `opts` (every setting's
// value, re-read after "Apply settings") and `titles` (tooltips by label). A MutationObserver drives the callbacks.
(() => {
  if (window.__a1111Compat) return;
  window.__a1111Compat = true;
  const OPTS_URL = "/sd_extensions_page/opts";

  window.gradioApp = function () {
    const elems = document.getElementsByTagName("gradio-app");
    const elem = elems.length ? elems[0] : document;
    const root = elem.shadowRoot ? elem.shadowRoot : elem;
    if (root !== document && !root.getElementById) root.getElementById = (id) => document.getElementById(id);
    return root === elem && elem !== document ? document : root;
  };

  // Gradio 3 put a textbox's <textarea>/<input> right under its <label>; Gradio 6 wraps it in one more <div>.
  // Extensions select "#txt2img_prompt > label > textarea": a selector that finds nothing is tried again with
  // "> label textarea" (only then, so selectors that match are never changed).
  const GRADIO3_CHILD = /> *label *> *(textarea|input|select)/g;
  function withFallback(proto, name, empty) {
    const original = proto[name];
    proto[name] = function (selector) {
      const found = original.call(this, selector);
      if (!empty(found) || typeof selector !== "string" || !GRADIO3_CHILD.test(selector)) return found;
      GRADIO3_CHILD.lastIndex = 0;
      return original.call(this, selector.replace(GRADIO3_CHILD, "> label $1"));
    };
  }
  for (const proto of [Document.prototype, Element.prototype, DocumentFragment.prototype]) {
    withFallback(proto, "querySelector", (r) => r === null);
    withFallback(proto, "querySelectorAll", (r) => r.length === 0);
  }

  // A1111 writes extensions' scripts into the page's HTML, so their "DOMContentLoaded" (or window "load")
  // listeners run once all of them have run. Gradio adds them to the head after the document has loaded, one
  // element each, loading in any order: such a listener is kept and run once the page is built and every
  // extension script added so far has loaded (at the latest 3 s after the page is built).
  const addListener = EventTarget.prototype.addEventListener;
  const lateListeners = [];
  const pendingScripts = new Set();
  let uiReady = false;
  let flushTimer = null;
  function watchScript(el) {
    if (!el.src || !el.src.includes("/sd_extensions/") || el.__a1111Watched) return;
    el.__a1111Watched = true;
    if (performance.getEntriesByName(el.src).length) return;  // fetched already: it runs before our timers
    pendingScripts.add(el);
    const done = () => { pendingScripts.delete(el); maybeFlush(); };
    addListener.call(el, "load", done);
    addListener.call(el, "error", done);
  }
  document.querySelectorAll("script[src]").forEach(watchScript);
  new MutationObserver((muts) => muts.forEach((m) => m.addedNodes.forEach((n) => n.tagName === "SCRIPT" && watchScript(n))))
    .observe(document.head || document.documentElement, { childList: true });
  function flushLate() {
    clearTimeout(flushTimer);
    while (lateListeners.length) {
      const [target, type, listener] = lateListeners.shift();
      try {
        if (typeof listener === "function") listener.call(target, new Event(type));
        else listener.handleEvent(new Event(type));
      } catch (e) {
        console.error("error running a page-load listener", e);
      }
    }
  }
  function maybeFlush() {
    if (uiReady && pendingScripts.size === 0) setTimeout(flushLate, 0);
  }
  function lateLoadListener(target, type) {
    if (target === document && type === "DOMContentLoaded") return document.readyState !== "loading";
    if (target === window && type === "load") return document.readyState === "complete";
    return false;
  }
  for (const target of [document, window]) {
    target.addEventListener = function (type, listener, options) {
      if (listener && lateLoadListener(target, type)) {
        lateListeners.push([target, type, listener]);
        maybeFlush();
        return;
      }
      return addListener.call(this, type, listener, options);
    };
  }
  function markUiReady() {
    uiReady = true;
    maybeFlush();
    flushTimer = setTimeout(flushLate, 3000);
  }

  const uiUpdateCallbacks = [];
  const uiAfterUpdateCallbacks = [];
  const uiLoadedCallbacks = [];
  const uiTabChangeCallbacks = [];
  const optionsChangedCallbacks = [];
  const optionsAvailableCallbacks = [];
  window.onUiUpdate = (cb) => uiUpdateCallbacks.push(cb);
  window.onAfterUiUpdate = (cb) => uiAfterUpdateCallbacks.push(cb);
  let uiLoadedFired = false;
  // Registered after the page was built (a late script): run at once, as it would have run at load.
  window.onUiLoaded = (cb) => (uiLoadedFired ? setTimeout(() => executeCallbacks([cb], undefined), 0) : uiLoadedCallbacks.push(cb));
  window.onUiTabChange = (cb) => uiTabChangeCallbacks.push(cb);
  window.onOptionsChanged = (cb) => optionsChangedCallbacks.push(cb);
  window.onOptionsAvailable = (cb) => optionsAvailableCallbacks.push(cb);

  function executeCallbacks(queue, arg) {
    for (const cb of queue) {
      try {
        cb(arg);
      } catch (e) {
        console.error("error running callback", cb, ":", e);
      }
    }
  }
  window.executeCallbacks = executeCallbacks;

  window.opts = window.opts || {};
  window.titles = window.titles || {};

  window.updateInput = function (target) {
    target.dispatchEvent(new Event("input", { bubbles: true }));
    target.dispatchEvent(new Event("change", { bubbles: true }));
  };

  window.get_uiCurrentTab = function () {
    return document.querySelector("#tabs > .tab-nav > button.selected, #tabs button[role=tab][aria-selected=true]");
  };
  window.get_uiCurrentTabContent = function () {
    return document.querySelector("#tabs > .tabitem[id^=tab_]:not([style*='display: none']), " +
      "#tabs > div[role=tabpanel][id^=tab_]:not([hidden])");
  };
  window.get_tab_index = function (tabId) {
    const buttons = document.querySelectorAll(`#${tabId} button[role=tab], #${tabId} > div > button`);
    for (let i = 0; i < buttons.length; i++) {
      if (buttons[i].classList.contains("selected") || buttons[i].getAttribute("aria-selected") === "true") return i;
    }
    return 0;
  };
  window.uiElementIsVisible = function (el) {
    return !!el && el.offsetParent !== null;
  };
  window.uiElementInSight = function (el) {
    if (!el) return false;
    const rect = el.getBoundingClientRect();
    return rect.bottom > 0 && rect.top < window.innerHeight;
  };

  async function loadOpts(initial) {
    try {
      const resp = await fetch(OPTS_URL, { credentials: "same-origin" });
      if (!resp.ok) return;
      const data = await resp.json();
      Object.keys(window.opts).forEach((k) => delete window.opts[k]);
      Object.assign(window.opts, data);
      executeCallbacks(initial ? optionsAvailableCallbacks : [], undefined);
      executeCallbacks(optionsChangedCallbacks, undefined);
      // A1111's settings arrive with a page update: scripts waiting in onUiUpdate for `opts` go on now.
      if (initial) executeCallbacks(uiUpdateCallbacks, []);
    } catch (e) {
      console.error("could not read the settings for extensions' scripts:", e);
    }
  }

  let loaded = false;
  let afterTimer = null;
  let currentTab = null;
  function onMutations(mutations) {
    if (!loaded && document.querySelector("#txt2img_prompt textarea, #tabs")) {
      loaded = true;
      loadOpts(true).finally(() => {
        executeCallbacks(uiLoadedCallbacks, undefined);
        uiLoadedFired = true;
        markUiReady();
      });
    }
    executeCallbacks(uiUpdateCallbacks, mutations);
    clearTimeout(afterTimer);
    afterTimer = setTimeout(() => executeCallbacks(uiAfterUpdateCallbacks, undefined), 200);
    const tab = window.get_uiCurrentTab();
    if (tab && tab !== currentTab) {
      const first = currentTab === null;
      currentTab = tab;
      if (!first) executeCallbacks(uiTabChangeCallbacks, undefined);
    }
  }

  function start() {
    new MutationObserver(onMutations).observe(document.body || document.documentElement, { childList: true, subtree: true });
    onMutations([]);
  }
  // Gradio may add the head's scripts after the document has loaded.
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
  // "Apply settings" changes opts: read them again once the page has answered.
  document.addEventListener("click", (ev) => {
    const button = ev.target && ev.target.closest && ev.target.closest("#settings_submit, [id$=settings_submit]");
    if (button) setTimeout(() => loadOpts(false), 700);
  }, true);
})();
