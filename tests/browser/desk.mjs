// Drives the sign-off desk in Debian's headless Chromium. Started by the Rust
// e2e test `desk::sign_off_desk_in_a_real_browser`, which runs the real
// imc-server and agent and passes URLs and logins in the environment.
//
// Protocol with the test: prints "READY" when the queue is open and waiting
// for a packet to arrive; prints "DESK OK" at the end; any failed check exits
// non-zero with the reason on stderr.

import { check, env, launch, screenshot } from "./harness.mjs";

const base = env("IMC_URL");
const signoff = { name: env("IMC_SIGNOFF_USER"), password: env("IMC_SIGNOFF_PASSWORD") };
const clerk = { name: env("IMC_CLERK_USER"), password: env("IMC_CLERK_PASSWORD") };
const admin = { name: env("IMC_ADMIN_USER"), password: env("IMC_ADMIN_PASSWORD") };
const liveDocNo = env("IMC_LIVE_DOC_NO");
const attachDocNo = env("IMC_ATTACH_DOC_NO");
const WAIT = 45_000;


async function login(page, user) {
  await page.goto(`${base}/ui/login`);
  await page.fill('input[name="name"]', user.name);
  await page.fill('input[name="password"]', user.password);
  await Promise.all([page.waitForURL(/\/ui\/queue/), page.click('button[type="submit"]')]);
}

async function logout(page) {
  await Promise.all([page.waitForURL(/\/ui\/login/), page.click("header form button")]);
}

/// POSTs a form from inside the page (so the browser sends its cookie and
/// Origin like a real form would) and returns the HTTP status.
async function postFromPage(page, path, fields) {
  return page.evaluate(async ({ path, fields }) => {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(fields).toString(),
      redirect: "manual",
    });
    return response.status;
  }, { path, fields });
}

const { context, close } = await launch();

try {
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(WAIT);
  await page.goto(`${base}/ui/login`);
  await screenshot(page, "login");

  // 1. Log in as sign-off staff; the queue is open and empty of our document.
  await login(page, signoff);
  check((await page.locator("a.open-doc", { hasText: liveDocNo }).count()) === 0,
    "the live document is in the queue before its packet arrived");
  const before = Number(await page.textContent("#queue-total"));
  await page.locator("body[data-live-ready]").waitFor({ state: "attached" });
  console.log("READY");

  // 2. The packet arrives (the test drops it into the agent's inbox): the row
  //    appears without a reload.
  const navigations = [];
  page.on("framenavigated", (f) => { if (f === page.mainFrame()) navigations.push(f.url()); });
  const row = page.locator("a.open-doc", { hasText: liveDocNo });
  await row.waitFor({ state: "visible", timeout: WAIT });
  check(navigations.length === 0, `the queue page reloaded: ${navigations.join(", ")}`);
  const after = Number(await page.textContent("#queue-total"));
  check(after === before + 1, `queue total went from ${before} to ${after}, expected +1`);
  await screenshot(page, "queue");

  // 3. Open it and page through with the keyboard.
  await Promise.all([page.waitForURL(/\/ui\/documents\/\d+/), row.click()]);
  const docUrl = page.url();
  const docPath = new URL(docUrl).pathname;
  await page.locator("#page-image").waitFor();
  // A downloaded page is named after its document, not "file.png".
  const saveAs = await page.getAttribute("#download", "download");
  check(saveAs.startsWith(liveDocNo.replace(/[^A-Za-z0-9_-]/g, "_") + "-p01."), `download name is "${saveAs}"`);
  // Times are the browser's local time with the zone, not bare UTC.
  const created = page.locator("#fields time").first();
  const stamp = await created.getAttribute("datetime");
  const shown = await created.textContent();
  const utc = new Date(stamp);
  const local = new Date(utc.getTime() + 8 * 3600 * 1000);
  const hhmm = `${String(local.getUTCHours()).padStart(2, "0")}:${String(local.getUTCMinutes()).padStart(2, "0")}`;
  check(shown.includes(hhmm) && shown.includes("GMT+8"),
    `created at ${stamp} shows as "${shown}", expected ${hhmm} GMT+8`);
  const visibleThumbs = await page.locator("#thumbs .thumb:not([hidden])").count();
  check(visibleThumbs >= 2, `expected at least 2 visible pages, saw ${visibleThumbs}`);
  const current = () => page.getAttribute("#viewer", "data-current");
  const label = () => page.textContent("#page-label");
  const first = await current();
  check((await label()).includes(`1 of ${visibleThumbs}`), `page label is ${await label()}`);
  await page.keyboard.press("ArrowRight");
  check((await current()) !== first, "ArrowRight did not move to the next page");
  check((await label()).includes(`2 of ${visibleThumbs}`), `after ArrowRight: ${await label()}`);
  const src2 = await page.getAttribute("#page-image", "src");
  await page.keyboard.press("ArrowLeft");
  check((await current()) === first, "ArrowLeft did not go back");
  check((await page.getAttribute("#page-image", "src")) !== src2, "the large image did not change");
  await page.keyboard.press("+");
  check((await page.getAttribute("#page-image", "style")).includes("scale(1.25)"), "+ did not zoom");
  await page.keyboard.press("r");
  check((await page.getAttribute("#page-image", "style")).includes("rotate(90deg)"), "r did not rotate");
  await page.keyboard.press("0");
  // Blank pages are hidden but reachable.
  const blanks = await page.locator("#thumbs .thumb[data-blank]").count();
  if (blanks > 0) {
    check(!(await page.locator("#thumbs .thumb[data-blank]").first().isVisible()), "blank pages are shown by default");
    await page.keyboard.press("b");
    check(await page.locator("#thumbs .thumb[data-blank]").first().isVisible(), "b did not show the blank pages");
    check(!(await page.textContent(".blank-toggle")).includes("hidden"), "shown blank pages are called hidden");
    check((await label()).includes(`of ${visibleThumbs + blanks}`), `with blank pages: ${await label()}`);
    await page.keyboard.press("b");
  }
  // Thumbnails are real images, served with an ETag and cacheable.
  const thumbSrc = await page.getAttribute("#thumbs .thumb img", "src");
  const thumb = await page.request.get(`${base}${thumbSrc}`);
  check(thumb.status() === 200 && thumb.headers()["content-type"] === "image/jpeg", `thumbnail: ${thumb.status()}`);
  check(/^"[0-9a-f]{64}-thumb"$/.test(thumb.headers()["etag"] || ""), `thumbnail ETag ${thumb.headers()["etag"]}`);
  const etag = thumb.headers()["etag"];
  const again = await page.request.get(`${base}${thumbSrc}`, { headers: { "If-None-Match": etag } });
  check(again.status() === 304, `thumbnail with its ETag answered ${again.status()}`);
  const part = await page.request.get(`${base}${thumbSrc}`, { headers: { Range: "bytes=0-9" } });
  check(part.status() === 206 && (await part.body()).length === 10, `thumbnail range answered ${part.status()}`);
  check(/^bytes 0-9\/\d+$/.test(part.headers()["content-range"] || ""), `content-range ${part.headers()["content-range"]}`);
  await screenshot(page, "document");

  // 4. A form without its CSRF token is refused, and nothing changes.
  const forged = await postFromPage(page, `${docPath}/sign-off`, {});
  check(forged === 403, `sign-off without a CSRF token answered ${forged}`);
  await page.reload();
  check((await page.getAttribute("h1 .badge", "data-status")) === "matched", "the forged sign-off changed the status");

  // 5. A second tab on the same document, to see someone else's decision.
  const other = await context.newPage();
  other.setDefaultTimeout(WAIT);
  await other.goto(docUrl);
  await other.locator("#sign-off").waitFor();
  await other.locator("body[data-live-ready]").waitFor({ state: "attached" });

  // 6. Reject with a reason, from the keyboard: x focuses the reason, Ctrl+Enter sends.
  await page.keyboard.press("x");
  check(await page.evaluate(() => document.activeElement && document.activeElement.id === "reject-reason"),
    "x did not focus the rejection reason");
  await page.keyboard.type("Page 2 is blurred");
  await Promise.all([page.waitForURL(/flash=rejected/), page.keyboard.press("Control+Enter")]);
  check((await page.getAttribute("h1 .badge", "data-status")) === "rejected", "the status did not change to rejected");
  check((await page.textContent("#fields")).includes("Page 2 is blurred"), "the reason is not shown");
  check((await page.textContent("#audit")).includes(`staff ${signoff.name}`), "the audit trail does not name the user");
  check((await page.textContent("#audit")).includes("Rejected"), "the history shows the action in words");

  // 7. The other tab hears of it, and its own sign-off gets a clear 409.
  await other.locator("#live-banner:not([hidden])").waitFor({ timeout: WAIT });
  await other.keyboard.press("s");
  await other.locator("#decision-conflict").waitFor();
  const conflict = await other.textContent("#decision-conflict");
  check(/already decided/.test(conflict) && /Rejected/.test(conflict), `conflict message: ${conflict}`);
  await other.close();

  // 8. The exception queue: find the document and attach the packet by hand.
  await page.goto(`${base}/ui/packets`);
  const packetLink = page.locator("a.open-packet").first();
  await packetLink.waitFor();
  await Promise.all([page.waitForURL(/\/ui\/packets\/[0-9a-f-]{36}/), packetLink.click()]);
  const packetPath = new URL(page.url()).pathname;
  check((await page.locator(".page-card img").count()) >= 1, "the packet shows no pages");
  await page.fill("#search-input", attachDocNo.slice(0, -1)); // a prefix finds it too
  await page.keyboard.press("Enter");
  const result = page.locator("#search-results tr", { hasText: attachDocNo });
  await result.waitFor();
  await screenshot(page, "unmatched");
  await Promise.all([page.waitForURL(/flash=attached/), result.locator("button.attach").click()]);
  check((await page.getAttribute("h1 .badge", "data-status")) === "matched", "the attached document is not matched");
  const attachedPath = new URL(page.url()).pathname;
  // The packet, now matched, links to the document it went to.
  await page.goto(`${base}${packetPath}`);
  check((await page.getAttribute("#matched-document", "href")) === attachedPath,
    "the matched packet does not link to its document");
  await page.goto(`${base}/ui/packets`);
  check((await page.locator("a.open-packet").count()) === 0, "the packet is still in the exception queue");

  // 9. Language toggle: the same page in Chinese, from the same catalogue.
  await page.goto(`${base}/ui/queue`);
  await Promise.all([page.waitForURL(/\/ui\/queue/), page.click('header a[href^="/ui/lang/"]')]);
  check((await page.textContent("header nav")).includes("签收队列"), "the toggle did not switch to Chinese");
  await screenshot(page, "queue-zh");
  await page.goto(`${base}/ui/lang/en`);
  await logout(page);

  // 10. A clerk sees the document but no sign-off button, and is refused (403).
  await login(page, clerk);
  await page.goto(`${base}${attachedPath}`);
  check((await page.locator("#sign-off").count()) === 0, "a clerk is shown the sign-off button");
  check((await page.locator("#read-only").count()) === 1, "a clerk is not told the page is read-only");
  const csrf = await page.getAttribute('meta[name="csrf-token"]', "content");
  const refused = await postFromPage(page, `${attachedPath}/sign-off`, { _csrf: csrf });
  check(refused === 403, `a clerk's sign-off answered ${refused}`);
  await page.reload();
  check((await page.getAttribute("h1 .badge", "data-status")) === "matched", "a clerk's sign-off changed the status");
  await logout(page);

  // 11. Sign off with one keystroke, then revoke the sign-off with a reason (as an admin).
  await login(page, admin);
  await page.goto(`${base}${attachedPath}`);
  await Promise.all([page.waitForURL(/flash=signed_off/), page.keyboard.press("s")]);
  check((await page.getAttribute("h1 .badge", "data-status")) === "ready", "s did not sign off");
  await page.keyboard.press("u");
  await page.keyboard.type("Signed off by mistake");
  await Promise.all([page.waitForURL(/flash=revoked/), page.keyboard.press("Control+Enter")]);
  check((await page.getAttribute("h1 .badge", "data-status")) === "matched", "the sign-off was not revoked");

  // 12. Admin pages (and their screenshots).
  await page.goto(`${base}/ui/agents`);
  check((await page.locator("#agent-table tbody tr").count()) >= 1, "the agents page lists no agent");
  await page.fill('#new-code input[name="site"]', "branch-02");
  await Promise.all([page.waitForLoadState(), page.click("#new-code button")]);
  check(/enr_[0-9a-f]{16}/.test(await page.textContent("#enrollment-code")), "no enrolment code was shown");
  await screenshot(page, "agents");
  // Revoking asks first: declined, nothing happens; accepted, it is done.
  let asked = "";
  page.once("dialog", (d) => { asked = d.message(); d.dismiss(); });
  await page.click("#agent-table button.danger");
  await page.waitForTimeout(300);
  check(asked.startsWith("Revoke the scan desk"), `no confirmation asked: "${asked}"`);
  check(!(await page.textContent("#agent-table")).includes("Revoked"), "revoked without confirmation");
  page.once("dialog", (d) => d.accept());
  await Promise.all([page.waitForURL(/\/ui\/agents$/), page.click("#agent-table button.danger")]);
  check((await page.textContent("#agent-table")).includes("Revoked"), "the agent was not revoked");
  await page.goto(`${base}/ui/admin`);
  check((await page.textContent("#users")).includes(signoff.name), "the users list lacks the sign-off user");
  await screenshot(page, "admin");

  console.log("DESK OK");
} catch (e) {
  console.error(`desk browser test failed: ${e && e.stack ? e.stack : e}`);
  process.exitCode = 1;
} finally {
  await close();
}
