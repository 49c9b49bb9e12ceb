// Injected into a copy of report.html by tests/test_report.py; headless Chromium runs it and the
// test reads its findings (JSON) from the element with id bertja-probe in the dumped DOM.
(function () {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const probe = async () => {
    const out = { menu: [], entries: {}, shown: null, errors: [] };
    await sleep(500);
    out.menu = [...document.querySelectorAll("#app a")].map((a) => a.textContent.trim()).filter((t) => t);
    for (const [path, entry] of Object.entries(results)) {
      const rec = { mime: entry.mime_type, labels: entry.labels };
      try {
        if (entry.mime_type.startsWith("image/")) {
          const img = new Image();
          await new Promise((resolve, reject) => {
            img.onload = resolve;
            img.onerror = () => reject(new Error("image failed to load"));
            img.src = entry.data_uri;
          });
          rec.width = img.naturalWidth;
          rec.height = img.naturalHeight;
          const c = document.createElement("canvas");
          c.width = img.naturalWidth;
          c.height = img.naturalHeight;
          const ctx = c.getContext("2d");
          ctx.drawImage(img, 0, 0);
          const d = ctx.getImageData(0, 0, c.width, c.height).data;
          let colored = 0;
          for (let i = 0; i < d.length; i += 4) {
            const mx = Math.max(d[i], d[i + 1], d[i + 2]), mn = Math.min(d[i], d[i + 1], d[i + 2]);
            if (mx - mn > 60) colored++;
          }
          rec.colored_fraction = colored / (d.length / 4);
        } else if (entry.mime_type === "text/html") {
          const b64 = entry.data_uri.split(",", 2)[1];
          const text = new TextDecoder().decode(Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0)));
          const doc = new DOMParser().parseFromString(text, "text/html");
          rec.table_rows = doc.querySelectorAll("table tr").length;
          rec.text = doc.body.textContent.slice(0, 2000);
        }
      } catch (err) {
        rec.error = String(err);
      }
      out.entries[path] = rec;
    }
    // As a person would: open the first category, then the first result's view button.
    const cat = [...document.querySelectorAll("#app a")].find((a) => a.textContent.trim() === window.BERTJA_CATEGORY);
    if (cat) {
      cat.click();
      await sleep(500);
      const view = document.querySelector("#app table a");
      if (view) {
        view.click();
        await sleep(800);
        const shown = [...document.querySelectorAll("#app img")].filter((i) => i.src.startsWith("data:image/png"));
        out.shown = shown.map((i) => ({ width: i.naturalWidth, complete: i.complete }));
      }
    }
    const pre = document.createElement("pre");
    pre.id = "bertja-probe";
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  };
  window.addEventListener("load", () => probe().catch((err) => {
    const pre = document.createElement("pre");
    pre.id = "bertja-probe";
    pre.textContent = JSON.stringify({ fatal: String(err) });
    document.body.appendChild(pre);
  }));
})();
