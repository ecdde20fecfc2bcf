// Drives the scan desk's console (served by imc-agent) in Debian's headless
// Chromium. Started by the Rust e2e test `console::the_desk_console_in_a_real_browser`,
// which runs the real server and agent and reacts to each line printed here:
//   READY     the console is open and connected: scan packet A (cover + 2 pages)
//   MATCHED   A showed as matched: scan a packet whose cover names no document yet
//   WAITING   it showed as waiting: reject A with a reason
//   REJECTED  the reason reached the desk; the reprinted cover PDF is saved
//   RESCAN    the clerk chose A's rescan: scan two pages without a cover
//   RESCANNED they replaced A's pages: stop the server
//   OFFLINE   the offline banner is up: scan packet B (declares 3 pages, 1 scanned)
//   CONSOLE OK
// The page is never reloaded: a marker set at the start must survive to the end.

import { check, env, launch, screenshot } from "./harness.mjs";
import { writeFileSync } from "node:fs";

const url = env("IMC_CONSOLE_URL");
const docA = env("IMC_DOC_A");
const docB = env("IMC_DOC_B");
const reason = env("IMC_REJECT_REASON");
const pdfOut = env("IMC_COVER_PDF_OUT");
const WAIT = 60_000;


const { context, close } = await launch();

try {
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(WAIT);
  await page.goto(url);
  await page.evaluate(() => { window.__noReload = true; });
  await page.waitForSelector("#link.ok");
  check((await page.textContent("#link")).includes("Connected"), "the link badge does not say Connected");
  check((await page.textContent("#now-body")).includes("Nothing being scanned"), "the idle card is missing");
  console.log("READY");

  // A: matched, named, counted against its declared count, without a reload.
  const matched = page.locator(`#packets li[data-state="matched"]`, { hasText: docA });
  await matched.waitFor();
  const textA = await matched.textContent();
  check(textA.includes(`Matched → ${docA}`), `packet A does not name its document: ${textA}`);
  check(textA.includes("2 of 2 declared pages"), `packet A's count is not shown against its declaration: ${textA}`);
  check(textA.includes("Travel to Shanghai") && textA.includes("1234.50"), `packet A lacks the title or exact amount: ${textA}`);
  check(await page.evaluate(() => window.__noReload === true), "the page was reloaded");
  console.log("MATCHED");

  // An unknown cover: waiting for its document (late binding), with what to do.
  const waiting = page.locator(`#packets li[data-state="waiting"]`);
  await waiting.waitFor();
  check((await waiting.textContent()).includes("Waiting for its document"), "the waiting packet is not explained");
  console.log("WAITING");

  // Sign-off staff reject A: the reason reaches the desk.
  const rejected = page.locator(`#packets li[data-state="rejected"]`, { hasText: reason });
  await rejected.waitFor();
  check((await rejected.textContent()).includes("Rescan this document"), "the rejection does not say what to do");
  await screenshot(page, "console-en");

  // Reprint A's cover: find it, and fetch the PDF the print link opens.
  await page.fill("#q", docA);
  await page.click("#find button");
  const printLink = page.locator("#found a.print");
  await printLink.waitFor();
  const href = await printLink.getAttribute("href");
  const pdf = await page.evaluate(async (href) => {
    const r = await fetch(href);
    const bytes = new Uint8Array(await r.arrayBuffer());
    return { status: r.status, type: r.headers.get("content-type"), bytes: Array.from(bytes) };
  }, href);
  check(pdf.status === 200 && pdf.type === "application/pdf", `reprint answered ${pdf.status} ${pdf.type}`);
  writeFileSync(pdfOut, Buffer.from(pdf.bytes));

  // Chinese, from the same page.
  await page.click("#lang");
  check((await page.textContent("h1")).includes("扫描台"), "the title is not in Chinese");
  check((await page.locator(`#packets li[data-state="rejected"]`).textContent()).includes("签收退回"), "the packet list is not in Chinese");
  await screenshot(page, "console-zh");
  await page.click("#lang");
  console.log("REJECTED");

  // The clerk rescans A: chosen from the list, the next pages need no cover.
  const rescanButton = page.locator(`#pending li[data-doc="${docA}"] button.rescan`);
  await rescanButton.waitFor();
  await rescanButton.click();
  await page.waitForSelector("#rescan-next");
  check((await page.textContent("#now-body")).includes(`rescan of ${docA}`), "the chosen rescan is not shown");
  console.log("RESCAN");
  const rescanned = page.locator(`#packets li[data-state="matched"]`, { hasText: `rescan of ${docA}` });
  await rescanned.waitFor();
  check((await rescanned.textContent()).includes(`Matched → ${docA}`), `the rescan did not reach A: ${await rescanned.textContent()}`);
  console.log("RESCANNED");

  // The server goes away: a banner says so, and scanning goes on.
  await page.waitForSelector("#offline:not([hidden])");
  check((await page.textContent("#offline")).includes("cannot be reached"), "the offline banner says nothing useful");
  console.log("OFFLINE");

  // B, scanned offline: named from the desk's copy, and short against its count.
  const short = page.locator("#packets li", { hasText: docB });
  await short.waitFor();
  await page.waitForFunction((docB) => {
    const li = [...document.querySelectorAll("#packets li")].find((l) => l.textContent.includes(docB));
    return li && li.textContent.includes("SHORT");
  }, docB);
  check((await short.textContent()).includes("SHORT: 3 declared, 1 scanned, 2 missing"), `packet B's shortfall: ${await short.textContent()}`);
  check(await page.evaluate(() => window.__noReload === true), "the page was reloaded");
  await screenshot(page, "console-offline");
  console.log("CONSOLE OK");
} catch (e) {
  console.error(`console browser test failed: ${e && e.stack ? e.stack : e}`);
  process.exitCode = 1;
} finally {
  await close();
}
