// The human inbox in a real browser (Debian's chromium driven by
// playwright-core), against the real `synod demo`: sign-in, the decision
// package of the contested escalation, a decision with live update of a second
// reviewer's page, the history, agent and recent-decisions pages.
//
// Run: SYNOD_BIN=/path/to/synod node --test   (from tests/browser; see scripts/test)
// Screenshots go to $SYNOD_SCREENSHOTS, or a new temporary directory (printed).

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "../..");
const SYNOD_BIN =
  process.env.SYNOD_BIN ||
  path.join(process.env.CARGO_TARGET_DIR || path.join(REPO, "target"), "debug", "synod");
const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const STEP_TIMEOUT = 15_000; // for any one browser wait
const START_TIMEOUT = 60_000; // for the demo to print its token

const SUMMARY = "Raise the credit limit of account #5127 from 5,000 to 12,000 EUR";
const REVIEWER = "Avery (risk officer)";
const NOTE = "Checked the income documents by phone; approving the raise.";

// What the demo's contested scenario must show: each position in the
// decision package. Trust in credit.limits is still the prior 0.5, so under
// the default log-odds weighting (PROTOCOL.md §5.0.1) each position's
// evidence is authority × logit(forecast), the logit capped at ln 4:
// 0.9·ln(7/3), −0.3·ln 4, −0.8·ln(7/3), and 0 for a stance held at 0.5.
const POSITIONS = [
  { agent: "Credit Risk (proposer)", stance: "endorse", confidence: "0.7", authority: "0.9", trust: "0.5", weight: "0.7625680743483", reasoning: "" },
  { agent: "Fraud Sentinel", stance: "challenge", confidence: "0.8", authority: "0.3", trust: "0.5", weight: "-0.4158883083357", reasoning: "Three new devices logged in this month." },
  { agent: "Compliance", stance: "challenge", confidence: "0.7", authority: "0.8", trust: "0.5", weight: "-0.6778382883096", reasoning: "Income documents are eleven months old." },
  { agent: "Customer Care", stance: "endorse", confidence: "0.5", authority: "0.3", trust: "0.5", weight: "0", reasoning: "Long-standing customer, no complaints." },
];

/** Starts `synod demo` and resolves with its base URL and reviewer token. */
function startDemo(scratch) {
  if (!existsSync(SYNOD_BIN)) {
    throw new Error(`no synod binary at ${SYNOD_BIN}: build it (cargo build -p synod-cli) or set SYNOD_BIN`);
  }
  // The demo keeps its node under the temporary directory: point it at ours,
  // so nothing is left behind however the process ends.
  const child = spawn(SYNOD_BIN, ["demo", "--listen", "127.0.0.1:0"], {
    env: { ...process.env, TMPDIR: scratch, NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const ready = new Promise((resolve, reject) => {
    let base = null;
    const timer = setTimeout(
      () => reject(new Error(`synod demo printed no reviewer token within ${START_TIMEOUT} ms:\n${output}`)),
      START_TIMEOUT,
    );
    const onData = (chunk) => {
      output += chunk;
      base ??= output.match(/serving (http:\/\/127\.0\.0\.1:\d+)/)?.[1] ?? null;
      const token = output.match(/^ {2}(synod_rt_\S+)$/m)?.[1];
      if (base && token) {
        clearTimeout(timer);
        resolve({ base, token });
      }
    };
    child.stdout.setEncoding("utf8").on("data", onData);
    child.stderr.setEncoding("utf8").on("data", (chunk) => (output += chunk));
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${SYNOD_BIN}: ${e.message}`));
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`synod demo exited early (code ${code}, signal ${signal}):\n${output}`));
    });
  });
  return { child, ready, output: () => output };
}

/** Stops the demo: Ctrl-C first, then SIGKILL if it does not exit soon. */
async function stopDemo(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGINT");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}

/** The text of every cell of every body row of a table. */
function rows(locator) {
  return locator.locator("tbody tr").evaluateAll((trs) =>
    trs.map((tr) => [...tr.cells].map((td) => td.innerText.replace(/\s+/g, " ").trim())),
  );
}

describe("the web inbox in a browser", { timeout: 180_000 }, () => {
  let scratch;
  let shots;
  let demo;
  let base;
  let token;
  let browser;
  let first; // the reviewer who decides
  let second; // the same reviewer in another browser, watching the inbox
  let proposalUrl;
  const problems = []; // page errors, console errors, unexpected HTTP errors

  function watch(page, name) {
    page.setDefaultTimeout(STEP_TIMEOUT);
    page.on("pageerror", (e) => problems.push(`${name}: page error: ${e.message}`));
    // The one error a reviewer should meet: the 401 of a wrong token.
    const expected = (status, url) => status === 401 && new URL(url).pathname === "/login";
    page.on("console", (m) => {
      if (m.type() !== "error") return;
      const url = m.location().url;
      if (/status of 401\b/.test(m.text()) && expected(401, url)) return;
      problems.push(`${name}: console error: ${m.text()} (${url})`);
    });
    page.on("response", (r) => {
      if (r.status() >= 400 && !expected(r.status(), r.url())) {
        problems.push(`${name}: HTTP ${r.status()} for ${r.request().method()} ${r.url()}`);
      }
    });
    return page;
  }

  async function signIn(page, secret) {
    await page.getByLabel("Reviewer token").fill(secret);
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith("/login")),
      page.getByRole("button", { name: "Sign in" }).click(),
    ]);
    await page.waitForLoadState();
    return response;
  }

  before(async () => {
    scratch = mkdtempSync(path.join(tmpdir(), "synod-browser-"));
    demo = startDemo(scratch);
    // Never leave the demo running, even if this process is torn down.
    process.once("exit", () => demo?.child.kill("SIGKILL"));
    ({ base, token } = await demo.ready);
    if (!existsSync(CHROMIUM)) {
      throw new Error(`no browser at ${CHROMIUM}: apt-get install chromium (scripts/test does)`);
    }
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    shots = process.env.SYNOD_SCREENSHOTS || mkdtempSync(path.join(tmpdir(), "synod-screenshots-"));
    mkdirSync(shots, { recursive: true });
    const viewport = { width: 1280, height: 900 };
    first = watch(await (await browser.newContext({ viewport })).newPage(), "first");
    second = watch(await (await browser.newContext({ viewport })).newPage(), "second");
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await stopDemo(demo?.child);
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it("asks for a reviewer token, refuses a wrong one and accepts the real one", async (t) => {
    await first.goto(base + "/");
    await first.getByRole("heading", { name: "Reviewer sign-in" }).waitFor();
    await first.screenshot({ path: path.join(shots, "sign-in.png"), fullPage: true });

    const refused = await signIn(first, "synod_rt_not-a-real-token");
    assert.equal(refused.status(), 401);
    const alert = first.getByRole("alert");
    await alert.waitFor();
    assert.match(await alert.innerText(), /does not belong to a reviewer/);
    assert.equal(await first.getByText(`Signed in as`).count(), 0);

    const accepted = await signIn(first, token);
    assert.ok(accepted.status() < 400, `sign-in answered ${accepted.status()}`);
    await first.getByText(`Signed in as ${REVIEWER}`).waitFor();
    assert.equal(new URL(first.url()).pathname, "/");
    assert.equal(await first.getByRole("alert").count(), 0);
    t.diagnostic(`signed in at ${base}/`);
  });

  it("shows the contested escalation with its whole decision package", async (t) => {
    assert.equal((await first.locator("h2 .count").innerText()).trim(), "1");
    const card = first.locator("article.escalation", { hasText: SUMMARY });
    await card.waitFor();
    assert.equal(await first.locator("article.escalation").count(), 1);
    assert.match(await card.locator(".reason").innerText(), /contested/);
    assert.match(await card.locator("dl.facts").innerText(), /credit\.limits/);

    const positions = await rows(card.locator("table.positions"));
    assert.deepEqual(
      positions.map((r) => r[0].replace(/ (anthropic|openai|google|mistral)$/, "")),
      POSITIONS.map((p) => p.agent),
    );
    for (const [i, want] of POSITIONS.entries()) {
      const [, stance, confidence, authority, trust, weight, reasoning] = positions[i];
      assert.deepEqual(
        { stance, confidence, authority, trust, weight, reasoning },
        { stance: want.stance, confidence: want.confidence, authority: want.authority, trust: want.trust, weight: want.weight, reasoning: want.reasoning },
        `position of ${want.agent}`,
      );
    }

    // The tally against the thresholds: evidence E 0.76… for, C 1.09…
    // against; neither side reaches logit(0.8) = ln 4.
    const tally = await rows(card.locator("table.tally"));
    assert.equal(tally.length, 4);
    assert.match(tally[0][0], /Quorum/);
    assert.match(tally[1][1], /^E 0\.7625680743483, C 1\.0937265966453$/);
    assert.match(tally[2][0], /Approve/);
    assert.match(tally[2][1], /^-0\.331158522297$/);
    assert.match(tally[2][2], /^≥ logit\(0\.8\) = 1\.386294361119$/);
    assert.match(tally[3][0], /Reject/);
    assert.match(tally[3][2], /^≥ logit\(0\.8\) = 1\.386294361119$/);
    assert.match(await card.locator(".needed").innerText(), /Needs 1 agreeing reviewer decision/);
    await card.getByRole("button", { name: "Approve" }).waitFor();
    await card.getByRole("button", { name: "Reject" }).waitFor();

    const file = path.join(shots, "inbox.png");
    await first.screenshot({ path: file, fullPage: true });
    t.diagnostic(`inbox screenshot: ${file}`);
  });

  it("fits a phone screen: wide tables scroll inside the page", async () => {
    const wide = first.viewportSize();
    await first.setViewportSize({ width: 400, height: 800 });
    try {
      const { page, viewport } = await first.evaluate(() => ({
        page: document.documentElement.scrollWidth,
        viewport: document.documentElement.clientWidth,
      }));
      assert.ok(page <= viewport, `the inbox is ${page} px wide on a ${viewport} px screen`);
      await first.screenshot({ path: path.join(shots, "inbox-phone.png"), fullPage: true });
    } finally {
      await first.setViewportSize(wide);
    }
  });

  it("records an approval and updates another reviewer's open inbox live", async () => {
    await second.goto(base + "/");
    await signIn(second, token);
    await second.locator("article.escalation", { hasText: SUMMARY }).waitFor();
    // The live script has its event stream open.
    await second.locator("html[data-live=open]").waitFor({ state: "attached" });

    const card = first.locator("article.escalation", { hasText: SUMMARY });
    await card.getByLabel("Note (kept in the audit log)").fill(NOTE);
    await Promise.all([
      first.waitForURL(/\/proposals\/[0-9a-f]{64}$/),
      card.getByRole("button", { name: "Approve" }).click(),
    ]);
    proposalUrl = first.url();
    const status = first.locator("p.status");
    await status.waitFor();
    assert.match(await status.innerText(), /Status: approved_by_human/);
    assert.match(
      await first.locator("ul.decisions").innerText(),
      new RegExp(`${REVIEWER.replace(/[()]/g, "\\$&")}: approve — ${NOTE}`),
    );

    // The second page reloads on the event stream: the escalation leaves it.
    await second.locator("article.escalation").waitFor({ state: "detached" });
    await second.getByText("Nothing waits for a human decision.").waitFor();
    assert.equal((await second.locator("h2 .count").innerText()).trim(), "0");
    await second.screenshot({ path: path.join(shots, "inbox-after.png"), fullPage: true });
  });

  it("shows the proposal's history and the proposer's trust chart", async () => {
    assert.ok(proposalUrl, "the approval step reached the proposal page");
    await first.goto(proposalUrl);
    const history = await first.locator("ol.history").innerText();
    for (const line of [
      /proposed by Credit Risk/,
      /Fraud Sentinel challenges at confidence 0\.8/,
      /Compliance challenges at confidence 0\.7/,
      /Customer Care endorses at confidence 0\.5/,
      /closed when everyone had answered/,
      new RegExp(`reviewer ${REVIEWER.replace(/[()]/g, "\\$&")} decided approve`),
    ]) {
      assert.match(history, line);
    }
    await first.screenshot({ path: path.join(shots, "proposal.png"), fullPage: true });

    await Promise.all([
      first.waitForURL(/\/agents\/did:key:/),
      first.locator("dl.facts").getByRole("link", { name: "Credit Risk" }).click(),
    ]);
    await first.getByRole("heading", { name: "Credit Risk", level: 2 }).waitFor();
    assert.match(await first.locator("dl.facts").innerText(), /anthropic/);
    const chart = first.getByRole("img", { name: "Trust over time" });
    await chart.waitFor();
    assert.equal(await chart.evaluate((el) => el.tagName.toLowerCase()), "svg");
    const box = await chart.boundingBox();
    assert.ok(box && box.width > 100 && box.height > 30, `chart box ${JSON.stringify(box)}`);
    // Two outcomes scored Credit Risk, once in each domain: the loan in
    // credit.loans and the repayment-plan question (belief consensus) in
    // credit.collections. Each point is drawn inside the chart, with its
    // domain.
    const points = chart.locator("circle.trust-point");
    assert.equal(await points.count(), 2);
    for (const point of await points.all()) {
      const dot = await point.boundingBox();
      assert.ok(dot && dot.width > 0 && dot.x > box.x && dot.x + dot.width < box.x + box.width, `point box ${JSON.stringify(dot)}`);
      assert.match(await point.locator("title").textContent(), /^credit\.(loans|collections): 0\.5\d*$/);
    }
    const labels = await chart.locator("text.trust-label").allTextContents();
    assert.deepEqual(labels.map((l) => l.trim()).sort(), ["credit.collections", "credit.loans"]);
    await first.screenshot({ path: path.join(shots, "agent.png"), fullPage: true });
  });

  it("lists the decisions on the Recent decisions page", async () => {
    await Promise.all([
      first.waitForURL(/\/decisions$/),
      first.getByRole("link", { name: "Recent decisions" }).click(),
    ]);
    await first.getByRole("heading", { name: "Recent decisions" }).waitFor();
    const listed = (await rows(first.locator("table.recent"))).map((r) => [r[1], r[3]]);
    assert.deepEqual(listed, [
      ["Waive the 35 EUR late fee on account #2290", "approved"],
      ["What credit limit (EUR) should account #5127 get?", "approved"],
      ["Refund 480 EUR for disputed order #7731", "approved"],
      ["Refund order #3391 (240 EUR) to the customer's card", "approved"],
      ["Rotate the payments API signing key", "approved"],
      ["Which repayment plan should account #5127 be offered?", "approved"],
      [SUMMARY, "approved_by_human"],
      ["Block card payment #88120 of 3,200 EUR abroad", "rejected"],
      ["Approve a 25,000 EUR personal loan for applicant #4411", "approved"],
    ]);
    await first.screenshot({ path: path.join(shots, "decisions.png"), fullPage: true });

    // The open question (PROTOCOL.md §19): each answer, every cluster with
    // the dissent, the leading answer against the threshold.
    await Promise.all([
      first.waitForURL(/\/proposals\//),
      first.locator("table.recent").getByRole("link", { name: "What credit limit (EUR) should account #5127 get?" }).click(),
    ]);
    const openTally = await first.locator("table.tally").innerText();
    assert.match(openTally, /Cluster 8000\s+8000 · 8500\s+weight 1\.1/);
    assert.match(openTally, /Cluster 12000\s+12000\s+weight 0\.3/);
    assert.match(openTally, /Leading answer\s+8000 at 0\.785714\s+≥ 0\.7/);
    assert.match(await first.locator("table.positions").innerText(), /12000\s+0\.4/);
    assert.match(await first.locator("ol.history").innerText(), /Customer Care answers 8500 at confidence 0\.6/);
    await first.goBack();
    await first.getByRole("heading", { name: "Recent decisions" }).waitFor();

    // The sealed vote (PROTOCOL.md §18): who committed, then the reveals.
    await Promise.all([
      first.waitForURL(/\/proposals\//),
      first.locator("table.recent").getByRole("link", { name: "Refund 480 EUR for disputed order #7731" }).click(),
    ]);
    assert.match(await first.locator("p.sealed").innerText(), /reveal phase, commitments until .*; 2 committed, 0 not revealed/);
    const sealedHistory = await first.locator("ol.history").innerText();
    assert.match(sealedHistory, /Compliance commits to a sealed answer[\s\S]*Customer Care commits to a sealed answer[\s\S]*Compliance endorses at confidence 0\.8/);
    await first.goBack();
    await first.getByRole("heading", { name: "Recent decisions" }).waitFor();

    // The belief-consensus question: its pool and each distribution, with
    // the distance of each from the pool (PROTOCOL.md §15).
    await Promise.all([
      first.waitForURL(/\/proposals\//),
      first
        .locator("table.recent")
        .getByRole("link", { name: "Which repayment plan should account #5127 be offered?" })
        .click(),
    ]);
    const tally = await first.locator("table.tally").innerText();
    assert.match(tally, /Pooled distribution \(log pool\)\s+monthly 0\.609073 · biweekly 0\.314127 · deferred 0\.076799/);
    assert.match(tally, /monthly at 0\.609073/);
    const positions = await first.locator("table.positions").innerText();
    assert.match(positions, /monthly 0 · biweekly 0\.9 · deferred 0\.1/);
    assert.match(positions, /distance 0\.\d+/);
    assert.match(await first.locator("ol.history").innerText(), /Compliance gives monthly 0\.75 · biweekly 0\.2 · deferred 0\.05/);
    await first.screenshot({ path: path.join(shots, "belief.png"), fullPage: true });
  });

  it("raised no page error, console error or unexpected HTTP error", () => {
    assert.deepEqual(problems, []);
  });
});
