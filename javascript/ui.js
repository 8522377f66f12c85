// The page's own behaviour around Gradio: task ids, the progress bar with live preview, the prompt
// token counters, Ctrl+Enter, and showing Interrupt/Skip only while a tab is generating.
// Progress comes from POST /internal/progress (A1111's endpoint); counts from POST /sd_ui/token-count.
(() => {
  if (window.sdUi) return;
  const TABS = ["txt2img", "img2img"];
  const POLL_MS = 500;
  const byId = (id) => document.getElementById(id);

  function newTaskId() {
    const rand = Math.random().toString(36).slice(2, 10);
    return `task(${Date.now().toString(36)}${rand})`;
  }

  function formatEta(seconds) {
    if (seconds == null || !isFinite(seconds)) return "";
    const s = Math.max(0, Math.round(seconds));
    const m = Math.floor(s / 60);
    return m > 0 ? `${m}:${String(s % 60).padStart(2, "0")}` : `${s}s`;
  }

  function progressText(r) {
    const parts = [];
    if (r.sampling_steps) parts.push(`Step ${r.sampling_step}/${r.sampling_steps}`);
    if (r.job_count > 1) parts.push(`image batch ${Math.min(r.job_no + 1, r.job_count)}/${r.job_count}`);
    if (r.progress != null) parts.push(`${Math.round(r.progress * 100)}%`);
    if (r.eta != null && r.progress > 0) parts.push(`ETA ${formatEta(r.eta)}`);
    return parts.join(" · ");
  }

  // The progress bar and live preview lie over the gallery (A1111's place for them), sized to it on every poll.
  function progressBox(tab) {
    const results = byId(`${tab}_results`);
    if (!results) return null;
    let box = results.querySelector(":scope > .sd-progress-box");
    if (!box) {
      box = document.createElement("div");
      box.className = "sd-progress-box";
      box.innerHTML = '<div class="sd-progress"><div class="sd-progress-bar"></div>' +
        '<span class="sd-progress-text">Waiting…</span></div><div class="sd-live-preview"></div>';
      results.prepend(box);
    }
    const gallery = byId(`${tab}_gallery`);
    if (gallery && gallery.offsetParent === results) {
      box.style.top = `${gallery.offsetTop}px`;
      box.style.left = `${gallery.offsetLeft}px`;
      box.style.width = `${gallery.offsetWidth}px`;
      box.style.height = `${gallery.offsetHeight}px`;
    }
    return box;
  }

  const running = {};  // tab -> id_task

  function setRunning(tab, on) {
    const box = byId(`${tab}_generate_box`);
    if (box) box.classList.toggle("sd-running", on);
  }

  function finish(tab, id) {
    if (running[tab] !== id) return;
    delete running[tab];
    setRunning(tab, false);
    const box = progressBox(tab);
    if (box) box.remove();
  }

  async function poll(tab, id, livePreviewId, startedAt, seenActive) {
    if (running[tab] !== id) return;
    let r;
    try {
      const resp = await fetch("/internal/progress", {
        method: "POST",
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify({id_task: id, id_live_preview: livePreviewId, live_preview: true}),
      });
      r = await resp.json();
    } catch (e) {
      r = null;  // a transient error: keep polling
    }
    if (running[tab] !== id) return;  // finished while the request was in flight: draw nothing more
    if (r) {
      const box = progressBox(tab);
      if (box) {
        const bar = box.querySelector(".sd-progress-bar");
        const text = box.querySelector(".sd-progress-text");
        if (r.active) {
          bar.style.width = `${Math.round((r.progress || 0) * 100)}%`;
          text.textContent = progressText(r) || "Starting…";
        } else if (r.queued) {
          text.textContent = r.textinfo || "In queue…";
        }
        if (r.live_preview) {
          const holder = box.querySelector(".sd-live-preview");
          let img = holder.querySelector("img");
          if (!img) {
            img = document.createElement("img");
            img.alt = "live preview";
            holder.appendChild(img);
          }
          img.src = r.live_preview;
          livePreviewId = r.id_live_preview;
        }
      }
      seenActive = seenActive || r.active;
      if (r.completed || (seenActive && !r.active && !r.queued)) {
        finish(tab, id);
        return;
      }
    }
    setTimeout(() => poll(tab, id, livePreviewId, startedAt, seenActive), POLL_MS);
  }

  // Called by the Generate button's `js` hook: gives the run its id and starts showing its progress.
  function submit(tab, args) {
    const id = newTaskId();
    running[tab] = id;
    setRunning(tab, true);
    const box = progressBox(tab);
    if (box) box.querySelector(".sd-progress-text").textContent = "Waiting…";
    setTimeout(() => poll(tab, id, -1, Date.now(), false), 100);
    const out = Array.from(args);
    out[0] = id;
    return out;
  }

  // Called when a run's Gradio event has delivered its last result (its id comes back in the hidden box).
  function finishTask(tab, id) {
    finish(tab, id);
  }

  // --- token counters -------------------------------------------------------------------------
  const counted = {};

  function counterFor(wrapperId) {
    const wrapper = byId(wrapperId);
    if (!wrapper) return null;
    let span = wrapper.querySelector(".sd-token-counter");
    if (!span) {
      span = document.createElement("span");
      span.className = "sd-token-counter";
      span.id = `${wrapperId}_token_counter`;
      span.textContent = "0/75";
      wrapper.style.position = "relative";
      wrapper.appendChild(span);
    }
    return span;
  }

  function stepsOf(tab) {
    const input = document.querySelector(`#${tab}_steps input[type=number]`);
    return input ? parseInt(input.value, 10) || 20 : 20;
  }

  async function updateCounter(tab, wrapperId) {
    const textarea = document.querySelector(`#${wrapperId} textarea`);
    const span = counterFor(wrapperId);
    if (!textarea || !span) return;
    const key = `${textarea.value}\u0000${stepsOf(tab)}`;
    if (counted[wrapperId] === key) return;
    counted[wrapperId] = key;
    try {
      const resp = await fetch("/sd_ui/token-count", {
        method: "POST",
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify({prompt: textarea.value, steps: stepsOf(tab)}),
      });
      const r = await resp.json();
      span.textContent = r.text || "?";
      span.title = r.error || "tokens used / tokens the text encoder will see";
      span.classList.toggle("sd-token-over", r.used != null && r.used > 75);
    } catch (e) {
      counted[wrapperId] = null;
    }
  }

  function counterLoop() {
    for (const tab of TABS) {
      updateCounter(tab, `${tab}_prompt`);
      updateCounter(tab, `${tab}_neg_prompt`);
    }
  }

  // --- keys -----------------------------------------------------------------------------------
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Enter" || !(e.ctrlKey || e.metaKey)) return;
    const target = e.target;
    if (!(target instanceof HTMLTextAreaElement)) return;
    for (const tab of TABS) {
      if (target.closest(`#${tab}_prompt, #${tab}_neg_prompt, #${tab}_toprow`)) {
        e.preventDefault();
        const button = byId(`${tab}_generate`);
        if (button) button.click();
        return;
      }
    }
  });

  // An ImageEditor given a picture by an event (Send to inpaint) shows the brush as chosen but does not draw until
  // a tool is picked: pick the brush for the user, once the picture is in.
  function activateBrush(elemId, tries = 20) {
    const editor = byId(elemId);
    const brush = editor && editor.querySelector("button[aria-label=Brush]");
    if (brush && editor.querySelector("canvas")) {
      brush.click();
    } else if (tries > 0) {
      setTimeout(() => activateBrush(elemId, tries - 1), 150);
    }
  }

  setInterval(counterLoop, 700);
  window.sdUi = {submit, finishTask, newTaskId, progressText, formatEta, activateBrush};
})();
