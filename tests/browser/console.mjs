// Drives the Herald console in headless Chromium the way a developer would: sign in with an
// app key, create a webhook subscription, edit its filter, send a test event to it, find that delivery in the
// log, and redrive a dead letter. Screenshots of each step go to $HERALD_SCREENSHOTS.
//
// Input (environment): HERALD_CONSOLE_URL (the admin service's base URL), HERALD_APP_KEY,
// HERALD_RECEIVER_URL (where the new subscription delivers), HERALD_DEAD_LETTER (the
// notification id of a dead letter to redrive), HERALD_SCREENSHOTS, HERALD_CHROMIUM.
// Output: one JSON line on stdout; exit status 0 only when every step was seen to work.
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env("HERALD_CONSOLE_URL");
const shots = env("HERALD_SCREENSHOTS");
const deadLetter = env("HERALD_DEAD_LETTER");

const browser = await chromium.launch({
  executablePath: process.env.HERALD_CHROMIUM || "/usr/bin/chromium",
  // The machine's network is closed: without these, Chromium keeps trying to reach Google.
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const steps = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("dialog", (dialog) => dialog.accept());
  const shot = async (name) => {
    await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
    steps.push(name);
  };

  await page.goto(`${base}/console`);
  await page.fill("#login-key", env("HERALD_APP_KEY"));
  await page.click("#login-submit");
  await page.waitForSelector("#tabs:not([hidden])");
  await shot("1-signed-in");

  await page.fill("#subscription-form [name=subscription_id]", "console-sub");
  await page.fill("#subscription-form [name=event_types]", "order.*");
  await page.fill("#subscription-form [name=address]", env("HERALD_RECEIVER_URL"));
  await page.click("#subscription-create");
  const row = page.locator('#subscriptions-table tr[data-id="console-sub"]');
  await row.waitFor();
  await shot("2-subscription-created");

  await row.locator('button[data-action="edit"]').click();
  await page.fill("#subscription-form [name=filter]", 'data.currency == "CNY"');
  await page.click("#subscription-create");
  await page.locator('#subscriptions-table tr[data-id="console-sub"]', { hasText: 'data.currency == "CNY"' }).waitFor();
  await shot("2b-subscription-edited");

  await row.locator('button[data-action="test-send"]').click();
  await page.waitForFunction(() => document.querySelector("#test-result").textContent.includes("delivered"));
  const testResult = await page.textContent("#test-result");
  await shot("3-test-sent");

  await page.click('#tabs button[data-tab="deliveries"]');
  const logged = page.locator("#deliveries-table tbody tr", { hasText: "console-sub" }).filter({ hasText: "SUCCEEDED" });
  for (let i = 0; i < 100 && (await logged.count()) === 0; i++) {
    await page.waitForTimeout(200);
    await page.click('#deliveries-filter button[type="submit"]');
  }
  await logged.first().waitFor({ timeout: 5000 });
  const loggedNotification = await logged.first().getAttribute("data-notification");
  await shot("4-delivery-log");

  await page.click('#tabs button[data-tab="dead-letters"]');
  const letter = page.locator(`#dead-letters-table tr[data-notification="${deadLetter}"]`);
  await letter.waitFor();
  await shot("5-dead-letters");
  await letter.locator('button[data-action="redrive"]').click();
  await page.waitForFunction(() => document.querySelector("#redrive-result").textContent.startsWith("1 notification"));
  await shot("6-redriven");

  console.log(JSON.stringify({ ok: true, steps, testResult, loggedNotification }));
} catch (error) {
  console.log(JSON.stringify({ ok: false, steps, error: String(error) }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
