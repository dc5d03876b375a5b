// The web client in a real Chromium: two people, each in a browser context of their own
// (Alice at desktop width, Bob at phone width), register, chat live, and see removals
// and deletions at once. Screenshots of the main screens go to SCREENSHOT_DIR.
//
// SERVER_URL: the server under test. CHROMIUM: the browser (default /usr/bin/chromium).
//
// Alice reaches the server through a TCP relay the test can cut, which is what a
// network drop looks like to a browser (Chromium's offline emulation leaves open
// WebSockets alone).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { chromium } from "playwright-core";

const SERVER = process.env.SERVER_URL;
const SHOTS = process.env.SCREENSHOT_DIR ?? "screenshots";
const PASSWORD = "correct horse battery staple";
const XSS = "<img src=x onerror=alert(1)>";

let browser;
let relay;
const seen = { requests: [], sockets: [], problems: [], dialogs: [] };

/** A TCP relay to the server: `cut()` drops every connection and refuses new ones. */
async function startRelay(target) {
  const { hostname, port } = new URL(target);
  const open = new Set();
  let down = false;
  const server = net.createServer((client) => {
    if (down) {
      client.destroy();
      return;
    }
    const upstream = net.connect(Number(port), hostname);
    for (const [from, to] of [[client, upstream], [upstream, client]]) {
      open.add(from);
      from.on("close", () => {
        open.delete(from);
        to.destroy();
      });
      from.on("error", () => to.destroy());
      from.pipe(to);
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cut() {
      down = true;
      for (const socket of open) socket.destroy();
    },
    restore() {
      down = false;
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

before(async () => {
  assert.ok(SERVER, "SERVER_URL must name the server under test");
  await mkdir(SHOTS, { recursive: true });
  relay = await startRelay(SERVER);
  // playwright-core's launch makes a fresh, temporary user-data directory each time.
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
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
});

after(async () => {
  await browser?.close();
  relay?.cut();
  await relay?.close();
});

/** A fresh browser context (its own storage) and page, watched for what it loads and logs. */
async function person(name, viewport, origin) {
  const context = await browser.newContext({ viewport, colorScheme: "light", locale: "en-GB" });
  context.setDefaultTimeout(10000);
  context.on("request", (request) => seen.requests.push({ origin, url: request.url() }));
  const page = await context.newPage();
  page.on("websocket", (socket) => seen.sockets.push({ origin, url: socket.url() }));
  page.on("pageerror", (error) => seen.problems.push(`${name}: page error: ${error.message}`));
  page.on("console", (message) => {
    // A refused 4xx request is logged by Chromium; the tests provoke some on purpose.
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
      seen.problems.push(`${name}: console: ${message.text()}`);
    }
  });
  page.on("dialog", async (dialog) => {
    seen.dialogs.push(`${name}: ${dialog.type()}: ${dialog.message()}`);
    await dialog.dismiss();
  });
  await page.goto(origin);
  return { context, page };
}

const shot = (page, name) => page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
const chatItem = (page, name) => page.locator(".chat-item", { hasText: name });
const theirs = (page, text) => page.locator(".message.theirs .text", { hasText: text });
const mine = (page, text) => page.locator(".message.mine:not(.pending) .text", { hasText: text });

async function register(page, username) {
  await page.getByRole("button", { name: "Create an account" }).click();
  await page.getByLabel("Username", { exact: true }).fill(username);
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await page.locator("#connection[data-state=online]").waitFor();
}

async function send(page, text) {
  const composer = page.getByLabel("Message", { exact: true });
  await composer.fill(text);
  await composer.press("Enter");
  await mine(page, text.split("\n")[0]).last().waitFor();
}

/** Bob at phone width: from the list into a chat. */
async function openOnPhone(page, name) {
  // Polled every 10 s: a chat one is added to announces itself only to its room.
  await chatItem(page, name).waitFor({ timeout: 20000 });
  await chatItem(page, name).click();
  await page.locator("#chat-title", { hasText: name }).waitFor();
}

test("two people chat in the browser, and removal and deletion reach the other at once", async (t) => {
  const alice = await person("alice", { width: 1280, height: 800 }, relay.url);
  const bob = await person("bob", { width: 390, height: 844 }, new URL(SERVER).origin);
  const a = alice.page;
  const b = bob.page;

  // The steps tell one story: after a failed step the rest are skipped.
  let broken = false;
  const step = (name, body) =>
    t.test(name, { skip: broken && "an earlier step failed" }, async () => {
      try {
        await body();
      } catch (error) {
        broken = true;
        // What each screen showed when the step failed.
        await shot(a, "failed-alice").catch(() => {});
        await shot(b, "failed-bob").catch(() => {});
        throw error;
      }
    });

  await step("a wrong login and a refused registration show the API's own words", async () => {
    await a.getByRole("heading", { name: "Messenger" }).waitFor();
    await shot(a, "login");
    await a.getByLabel("Username", { exact: true }).fill("nobody");
    await a.getByLabel("Password", { exact: true }).fill("not the password");
    await a.getByRole("button", { name: "Log in" }).click();
    const error = a.getByRole("alert").filter({ hasText: /\w/ });
    await error.waitFor();
    assert.match(await error.innerText(), /username|password|credentials/i);

    await b.getByRole("button", { name: "Create an account" }).click();
    await b.getByLabel("Username", { exact: true }).fill("bob");
    await b.getByLabel("Password", { exact: true }).fill("short");
    await b.getByRole("button", { name: "Create account" }).click();
    await b.locator("#login-error li", { hasText: "password" }).waitFor();
    await b.getByRole("button", { name: "Log in" }).click(); // back to the login form
  });

  await step("both register and land on an empty chat list", async () => {
    await register(a, "alice");
    await register(b, "bob");
    await a.getByText("No chats yet").waitFor();
    assert.equal(await a.locator("#me-name").innerText(), "alice");
  });

  await step("alice creates a chat and adds bob from the members panel", async () => {
    await a.getByRole("button", { name: "New chat" }).click();
    await a.getByLabel("Name", { exact: true }).fill("Launch plans");
    await a.getByRole("button", { name: "Create chat" }).click();
    await a.locator("#chat-title", { hasText: "Launch plans" }).waitFor();
    await a.getByText("No messages yet. Say hello!").waitFor();

    await a.getByRole("button", { name: "Members" }).click();
    await a.getByLabel("Add people", { exact: true }).fill("bo");
    await a.locator("#add-members-people label", { hasText: "bob" }).click();
    await a.getByRole("button", { name: "Add selected" }).click();
    await a.locator("#member-list .person", { hasText: "bob" }).waitFor();
    await shot(a, "members");
    await a.keyboard.press("Escape");
    await a.locator("#members-dialog").waitFor({ state: "hidden" });
    await a.locator("#chat-subtitle", { hasText: "2 members" }).waitFor();
  });

  await step("they exchange messages live, each one's own set apart", async () => {
    await openOnPhone(b, "Launch plans");
    await send(a, "Morning! Are we still on for the launch review at 3?");
    await theirs(b, "launch review at 3").waitFor();
    await send(b, "Yes, I'll bring the numbers.");
    await theirs(a, "bring the numbers").waitFor();
    await send(a, "Great.\nI'll book the big room."); // Shift+Enter below
    const composer = b.getByLabel("Message", { exact: true });
    await composer.fill("See you there");
    await composer.press("Shift+Enter");
    await composer.pressSequentially("with coffee");
    await composer.press("Enter");
    await theirs(a, "See you there").waitFor();
    assert.equal(await theirs(a, "See you there").innerText(), "See you there\nwith coffee");
    assert.equal(await b.locator(".message.mine").count(), 2);
    await shot(a, "conversation");
    await shot(b, "phone-conversation");
  });

  await step("markup in a message is shown as text and runs nothing", async () => {
    await send(a, XSS);
    await theirs(b, "onerror").waitFor();
    assert.equal(await theirs(b, "onerror").innerText(), XSS);
    assert.equal(await a.locator("#messages img").count(), 0);
    assert.equal(await b.locator("#messages img").count(), 0);
  });

  await step("after a network drop the client reconnects and shows what it missed", async () => {
    relay.cut();
    await a.locator("#connection[data-state=offline]").waitFor();
    await a.getByLabel("Message", { exact: true }).fill("Sent while offline");
    await a.getByLabel("Message", { exact: true }).press("Enter");
    await a.getByText("Waiting for the connection…").waitFor();
    await send(b, "Did you see the draft?");
    relay.restore();
    await a.locator("#connection[data-state=online]").waitFor({ timeout: 20000 });
    await theirs(a, "Did you see the draft?").waitFor();
    await theirs(b, "Sent while offline").waitFor();
    assert.equal(await theirs(b, "Sent while offline").count(), 1);
    // In order: bob's message was stored before alice's outbox was sent again.
    const texts = await a.locator("#message-list .text").allInnerTexts();
    assert.deepEqual(texts.slice(-2), ["Did you see the draft?", "Sent while offline"]);
  });

  await step("older history loads as one scrolls up, and the session survives a reload", async () => {
    // Sixty messages straight over alice's own socket, faster than typing them.
    await a.evaluate(async () => {
      const { token, userId } = JSON.parse(sessionStorage.getItem("messenger.session"));
      const chatId = document.querySelector(".chat-item[aria-current=true]").dataset.id;
      const ws = new WebSocket(`ws://${location.host}/ws?token=${encodeURIComponent(token)}`);
      const limit = (what) => new Promise((_, reject) => setTimeout(() => reject(new Error(what)), 10000));
      await Promise.race([new Promise((resolve) => ws.addEventListener("open", resolve, { once: true })), limit("no /ws")]);
      const last = Promise.race([
        new Promise((resolve) => ws.addEventListener("message", (m) => JSON.parse(m.data).ack === 60 && resolve())),
        limit("no ack for the 60th message"),
      ]);
      for (let i = 1; i <= 60; i += 1) {
        ws.send(JSON.stringify({ event: "messages:create", data: { chatId, content: `note ${i}` }, ack: i }));
      }
      await last;
      ws.close();
      return userId;
    });
    await theirs(b, "note 60").waitFor();
    await b.reload();
    await openOnPhone(b, "Launch plans");
    await theirs(b, "note 60").waitFor();
    assert.equal(await theirs(b, "launch review").count(), 0, "only the newest page is loaded at first");
    await b.locator("#messages").evaluate((el) => el.scrollTo(0, 0));
    await theirs(b, "launch review").waitFor();
    await b.getByText("This is the beginning of the chat.").waitFor();
  });

  await step("bob is added to new chats and sees them without reloading", async () => {
    for (const name of ["Lunch", "Weekend"]) {
      await a.getByRole("button", { name: "New chat" }).click();
      await a.getByLabel("Name", { exact: true }).fill(name);
      await a.locator("#new-chat-search").fill("BOB");
      await a.locator("#new-chat-search").press("Enter"); // picks the first match
      await a.getByText("With bob").waitFor();
      await a.getByRole("button", { name: "Create chat" }).click();
      await a.locator("#chat-title", { hasText: name }).waitFor();
    }
    await send(a, "Hiking on Saturday?");
    await b.getByRole("button", { name: "Back to chats" }).click();
    // Polled every 10 s: a chat one is added to announces itself only to its room.
    await b.locator(".chat-item", { hasText: "Hiking on Saturday?" }).waitFor({ timeout: 20000 });
    // Newest activity first: a message, a creation, an older message.
    assert.deepEqual(await b.locator(".chat-name").allInnerTexts(), ["Weekend", "Lunch", "Launch plans"]);
    await shot(b, "phone-chat-list");
    await a.locator(".chat-item", { hasText: "Launch plans" }).click();
    await mine(a, "note 60").waitFor();
    await shot(a, "chat-list");
  });

  await step("the owner removes bob, and bob's screen shows it at once", async () => {
    await openOnPhone(b, "Launch plans");
    await a.getByRole("button", { name: "Members" }).click();
    await a.getByRole("button", { name: "Remove bob" }).click();
    await a.locator("#confirm-dialog").getByRole("button", { name: "Remove" }).click();
    await a.locator("#member-list .person", { hasText: "bob" }).waitFor({ state: "detached" });
    await b.getByText("You were removed from “Launch plans”.").first().waitFor({ timeout: 3000 });
    await b.locator("#chat-pane").waitFor({ state: "hidden" });
    assert.equal(await chatItem(b, "Launch plans").count(), 0);
    await a.keyboard.press("Escape");
  });

  await step("the owner deletes a chat, and it goes from bob's screen at once", async () => {
    await openOnPhone(b, "Weekend");
    await a.locator(".chat-item", { hasText: "Weekend" }).click();
    await a.getByRole("button", { name: "Members" }).click();
    await a.getByRole("button", { name: "Delete chat" }).click();
    await a.locator("#confirm-dialog").getByRole("button", { name: "Delete chat" }).click();
    await a.getByText("You deleted “Weekend”.").first().waitFor();
    await b.getByText("“Weekend” was deleted by its owner.").first().waitFor({ timeout: 3000 });
    assert.equal(await chatItem(b, "Weekend").count(), 0);
    assert.equal(await chatItem(a, "Weekend").count(), 0);
  });

  await step("a member leaves, and the owner's members panel shows it live", async () => {
    await a.locator(".chat-item", { hasText: "Lunch" }).click();
    await a.getByRole("button", { name: "Members" }).click();
    await a.locator("#member-list .person", { hasText: "bob" }).waitFor();
    await openOnPhone(b, "Lunch");
    await b.getByRole("button", { name: "Members" }).click();
    assert.equal(await b.getByRole("button", { name: "Delete chat" }).count(), 0, "only the owner deletes");
    assert.equal(await b.getByRole("button", { name: /^Remove/ }).count(), 0, "only the owner removes");
    await b.getByRole("button", { name: "Leave chat" }).click();
    await b.locator("#confirm-dialog").getByRole("button", { name: "Leave" }).click();
    await b.getByText("You left “Lunch”.").first().waitFor();
    assert.equal(await chatItem(b, "Lunch").count(), 0);
    await a.locator("#member-list .person", { hasText: "bob" }).waitFor({ state: "detached", timeout: 3000 });
    await a.keyboard.press("Escape");
    await a.locator("#chat-subtitle", { hasText: "1 member" }).waitFor({ timeout: 3000 });
  });

  await step("a token the server refuses sends one back to the login screen", async () => {
    await b.evaluate(() => {
      const session = JSON.parse(sessionStorage.getItem("messenger.session"));
      sessionStorage.setItem("messenger.session", JSON.stringify({ ...session, token: "x.e30.x" }));
    });
    await b.reload();
    await b.getByText("Your session has expired. Please log in again.").waitFor();
    await b.getByLabel("Username", { exact: true }).fill("bob");
    await b.getByLabel("Password", { exact: true }).fill(PASSWORD);
    await b.getByRole("button", { name: "Log in" }).click();
    await b.getByText("No chats yet").waitFor();
  });

  await step("nothing left the server's origin, and nothing broke the policy", async () => {
    assert.ok(seen.requests.length > 10, "the requests were recorded");
    const foreign = seen.requests.filter((r) => new URL(r.url).origin !== r.origin);
    assert.deepEqual(foreign, []);
    assert.ok(seen.sockets.length >= 2);
    for (const socket of seen.sockets) {
      const url = new URL(socket.url);
      assert.equal(url.host, new URL(socket.origin).host);
      assert.equal(url.pathname, "/ws");
    }
    // The token travels in a URL only where a browser WebSocket needs it.
    assert.deepEqual(seen.requests.filter((r) => r.url.includes("token")), []);
    // An <img> made from a message would have asked for /x.
    assert.deepEqual(seen.requests.filter((r) => new URL(r.url).pathname === "/x"), []);
    assert.deepEqual(seen.dialogs, []);
    assert.deepEqual(seen.problems, []);
  });

  await alice.context.close();
  await bob.context.close();
});
