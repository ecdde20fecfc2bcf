// IMC sign-off desk: keyboard, page viewer and live updates.
// No inline scripts anywhere (the CSP forbids them): pages carry data-*
// attributes and this file wires them up.
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]');

  // htmx requests carry the session's CSRF token like forms do.
  document.body.addEventListener("htmx:configRequest", function (e) {
    if (csrf) e.detail.headers["X-CSRF-Token"] = csrf.content;
  });

  // ---- Times in the browser's own zone ----------------------------------
  // The server sends UTC, labelled; shown here in local time, zone named.
  const lang = document.documentElement.lang || undefined;
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      const at = new Date(el.getAttribute("datetime"));
      if (isNaN(at)) return;
      const pad = (n) => String(n).padStart(2, "0");
      const day = at.getFullYear() + "-" + pad(at.getMonth() + 1) + "-" + pad(at.getDate());
      const zone = new Intl.DateTimeFormat(lang, { timeZoneName: "short" })
        .formatToParts(at).find((p) => p.type === "timeZoneName");
      el.textContent = day + " " + pad(at.getHours()) + ":" + pad(at.getMinutes()) +
        (zone ? " " + zone.value : "");
      el.title = el.getAttribute("datetime");
    });
  }
  localTimes(document);
  document.body.addEventListener("htmx:load", function (e) { localTimes(e.target); });

  // ---- Confirmation before what cannot be undone at once -----------------
  document.addEventListener("submit", function (e) {
    const form = e.target;
    if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      e.preventDefault();
    }
  }, true);

  function typing(target) {
    return target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" ||
      target.tagName === "SELECT" || target.isContentEditable);
  }

  function submit(form) {
    if (!form) return false;
    if (form.requestSubmit) form.requestSubmit(); else form.submit();
    return true;
  }

  // ---- Page viewer -------------------------------------------------------
  const viewer = document.getElementById("viewer");
  const image = document.getElementById("page-image");
  const thumbs = Array.from(document.querySelectorAll("#thumbs .thumb"));
  const details = Array.from(document.querySelectorAll(".page-detail"));
  const label = document.getElementById("page-label");
  const showBlank = document.getElementById("show-blank");
  const download = document.getElementById("download");
  let current = -1;
  let zoom = 1;
  let rotation = 0;

  function visible() {
    const all = showBlank && showBlank.checked;
    return thumbs.filter((t) => all || !t.dataset.blank);
  }

  function transform() {
    if (image) image.style.transform = "rotate(" + rotation + "deg) scale(" + zoom + ")";
  }

  function show(index) {
    const thumb = thumbs[index];
    if (!thumb) return;
    current = index;
    image.src = thumb.dataset.view;
    if (download) {
      download.href = thumb.dataset.file;
      download.download = thumb.dataset.downloadName || "";
    }
    thumbs.forEach((t) => t.classList.toggle("current", t === thumb));
    details.forEach((d) => { d.hidden = Number(d.dataset.index) !== index; });
    const shown = visible();
    const position = shown.indexOf(thumb) + 1;
    if (label) {
      label.textContent = label.dataset.pageWord + " " + (position || "–") + " " +
        label.dataset.ofWord + " " + shown.length;
    }
    viewer.dataset.current = String(index);
    // Scroll the strip only, never the page.
    const strip = thumb.parentElement;
    if (strip) {
      const left = thumb.offsetLeft - strip.offsetLeft;
      if (left < strip.scrollLeft || left + thumb.offsetWidth > strip.scrollLeft + strip.clientWidth) {
        strip.scrollLeft = left - strip.clientWidth / 2 + thumb.offsetWidth / 2;
      }
    }
  }

  function step(delta) {
    const shown = visible();
    if (!shown.length) return;
    const at = shown.indexOf(thumbs[current]);
    const next = at < 0 ? 0 : Math.min(shown.length - 1, Math.max(0, at + delta));
    show(thumbs.indexOf(shown[next]));
  }

  function setZoom(z) { zoom = Math.min(6, Math.max(0.25, z)); transform(); }

  if (viewer && image && thumbs.length) {
    thumbs.forEach((t, i) => t.addEventListener("click", () => show(i)));
    const on = (id, f) => { const el = document.getElementById(id); if (el) el.addEventListener("click", f); };
    on("prev-page", () => step(-1));
    on("next-page", () => step(1));
    on("zoom-in", () => setZoom(zoom * 1.25));
    on("zoom-out", () => setZoom(zoom / 1.25));
    on("rotate", () => { rotation = (rotation + 90) % 360; transform(); });
    if (showBlank) {
      showBlank.addEventListener("change", () => {
        thumbs.forEach((t) => { if (t.dataset.blank) t.hidden = !showBlank.checked; });
        if (!visible().includes(thumbs[current])) step(0); else show(current);
      });
    }
    const first = visible()[0] || thumbs[0];
    show(thumbs.indexOf(first));
  }

  // ---- Keyboard ----------------------------------------------------------
  function go(id) {
    const link = document.getElementById(id);
    if (link) { window.location.href = link.href; return true; }
    return false;
  }

  function focusReason(id) {
    const field = document.getElementById(id);
    if (!field) return false;
    field.focus();
    return true;
  }

  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.metaKey) return;
    const target = e.target;
    if (typing(target)) {
      if (e.key === "Escape") target.blur();
      // Ctrl+Enter in a reason box sends its form.
      if (e.key === "Enter" && e.ctrlKey && target.form) { e.preventDefault(); submit(target.form); }
      return;
    }
    if (e.ctrlKey) return;
    let handled = true;
    switch (e.key) {
      case "ArrowRight": case "PageDown": case "j": step(1); break;
      case "ArrowLeft": case "PageUp": case "k": step(-1); break;
      case "+": case "=": setZoom(zoom * 1.25); break;
      case "-": case "_": setZoom(zoom / 1.25); break;
      case "0": zoom = 1; rotation = 0; transform(); break;
      case "r": rotation = (rotation + 90) % 360; transform(); break;
      case "b": if (showBlank) { showBlank.checked = !showBlank.checked; showBlank.dispatchEvent(new Event("change")); } break;
      case "s": handled = submit(document.getElementById("sign-off-form")); break;
      case "x": handled = focusReason("reject-reason"); break;
      case "u": handled = focusReason("unsign-reason"); break;
      case "n": handled = go("next-doc"); break;
      case "q": handled = go("queue-link"); break;
      case "Enter": {
        // On a list: open the first (oldest) entry.
        const first = document.querySelector("a.open-doc, a.open-packet");
        handled = !!first && !viewer;
        if (handled) window.location.href = first.href;
        break;
      }
      default: handled = false;
    }
    if (handled) e.preventDefault();
  });

  // ---- Live updates ------------------------------------------------------
  if (document.body.dataset.live && window.EventSource) {
    const source = new EventSource("/ui/events");
    // Marks the page as listening (tests wait for it instead of sleeping).
    source.addEventListener("open", () => { document.body.dataset.liveReady = "1"; });
    const page = document.querySelector("main.document");
    const banner = document.getElementById("live-banner");
    source.addEventListener("change", function (e) {
      let change;
      try { change = JSON.parse(e.data); } catch (_) { return; }
      if (document.getElementById("queue") && (change.documents.length || change.many)) {
        htmx.trigger(document.body, "imc:queue");
      }
      if (document.getElementById("packets") && (change.packets || change.many)) {
        htmx.trigger(document.body, "imc:packets");
      }
      if (page && banner && (change.many || change.documents.includes(Number(page.dataset.documentId)))) {
        // Our own decision reloads the page anyway; someone else's is announced.
        if (!window.imcDeciding) {
          banner.hidden = false;
          banner.className = "flash warning";
          banner.textContent = banner.dataset.message;
        }
      }
    });
  }
  document.addEventListener("submit", function () { window.imcDeciding = true; });
})();
