// Buckets and files: create a bucket, upload with a progress bar, open a signed link, preview
// an image. A preview is only ever an <img> of a short signed link, and only for image/* types:
// an image element never runs script (not even an SVG's), and no other type is shown inline.
import { allows, call, upload } from "../api.js";
import { button, empty, errorBox, field, grid, h, show, toast } from "../ui.js";

export async function render(main, { me, args }) {
  if (args[0]) return bucketPage(main, me, args[0]);
  const list = h("div", {}, "Loading buckets…");
  const name = h("input", { name: "bucket", required: true });
  const status = h("div", { "aria-live": "polite" });
  const create = h("form", { class: "card inline", "aria-label": "New bucket" },
    field("Bucket name", name), status, h("button", { type: "submit" }, "Create bucket"));
  create.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await call("storage.create_bucket", { name: name.value.trim() });
      window.location.hash = `#/files/${encodeURIComponent(name.value.trim())}`;
    } catch (err) { show(status, errorBox(err)); }
  });
  show(main, h("h1", {}, "Files"), list, allows(me.scopes, "storage:admin") ? create : null);
  try {
    const buckets = await call("storage.list_buckets");
    show(list, buckets.length
      ? h("ul", { class: "cards" }, buckets.map((b) => h("li", {},
        h("a", { href: `#/files/${encodeURIComponent(b.name)}` }, b.name),
        h("small", {}, b.visibility))))
      : empty("No buckets yet. A bucket holds files; creating one needs storage:admin."));
  } catch (err) { show(list, errorBox(err)); }
}

// Only image types are previewed, and only as an image.
export function previewable(contentType) {
  return /^image\/[a-z0-9.+-]+$/i.test((contentType || "").split(";")[0].trim());
}

function size(n) {
  return n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(1)} MiB`;
}

async function bucketPage(main, me, bucket) {
  const list = h("div", {}, "Loading files…");
  const status = h("div", { "aria-live": "polite" });
  const link = h("div", { "aria-live": "polite" });
  const preview = h("div", { "aria-live": "polite" });
  async function showPreview(f) {
    try {
      const signed = await call("storage.create_signed_url", { bucket, name: f.name, expires_in: 300 });
      const img = h("img", { src: signed.signed_url, alt: `Preview of ${f.name}`, class: "preview", referrerpolicy: "no-referrer" });
      img.addEventListener("error", () => show(preview, errorBox(new Error(`${f.name} cannot be shown as an image`))));
      show(preview, h("figure", { class: "card" }, img, h("figcaption", {}, `${f.name} · ${f.content_type} · ${f.size} `,
        h("button", { type: "button", onclick: () => show(preview) }, "Close preview"))));
    } catch (err) { show(preview, errorBox(err)); }
  }
  const load = async () => {
    try {
      const files = await call("storage.list", { bucket });
      show(list, files.length
        ? grid(["name", "size", "content_type", "created_at"], files.map((f) => ({ ...f, size: size(f.size) })), {
          caption: `Files in ${bucket}`,
          actions: (f) => [
            previewable(f.content_type) ? button("Preview", () => showPreview(f), { "aria-label": `Preview ${f.name}` }) : null,
            button("Signed link", async () => {
              try {
                const signed = await call("storage.create_signed_url", { bucket, name: f.name, expires_in: 3600 });
                show(link, h("p", { class: "card" }, "Link valid for an hour: ",
                  h("a", { href: signed.signed_url, target: "_blank", rel: "noopener noreferrer", class: "signed" }, signed.signed_url)));
              } catch (err) { show(link, errorBox(err)); }
            }, { "aria-label": `Signed link for ${f.name}` }),
            allows(me.scopes, "storage:write") ? button("Delete", async () => {
              if (!window.confirm(`Delete ${f.name}?`)) return;
              try { await call("storage.delete", { bucket, names: [f.name] }); load(); } catch (err) { show(status, errorBox(err)); }
            }, { class: "danger", "aria-label": `Delete ${f.name}` }) : null,
          ],
        })
        : empty("This bucket is empty. Upload a file above."));
    } catch (err) { show(list, errorBox(err)); }
  };
  const input = h("input", { type: "file", name: "file", required: true });
  const progress = h("progress", { max: "1", value: "0", "aria-label": "Upload progress", hidden: true });
  const form = h("form", { class: "card inline", "aria-label": "Upload" }, field("File", input), progress, status,
    h("button", { type: "submit" }, "Upload"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const file = input.files[0];
    if (!file) return;
    progress.hidden = false;
    progress.value = 0;
    show(status);
    try {
      await upload(bucket, file.name, file, (done) => { progress.value = done; });
      progress.value = 1;
      toast(`Uploaded ${file.name}`);
      form.reset();
      load();
    } catch (err) { show(status, errorBox(err)); }
  });
  show(main, h("p", {}, h("a", { href: "#/files" }, "← Buckets")), h("h1", {}, bucket),
    allows(me.scopes, "storage:write") ? form : null, link, preview, list);
  await load();
}
