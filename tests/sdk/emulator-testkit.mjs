// What the emulator's SDK tests (emulator-timed-load.mjs, emulator-flow.mjs) share: loading
// the pinned @azure/event-hubs, their --emulator/--gen flags, and checks that count failures.
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

// The SDK module, or exit 1 naming how to install it.
export async function loadSdk() {
  try {
    return await import("@azure/event-hubs");
  } catch (e) {
    console.error(`FAIL: cannot load @azure/event-hubs (${e.code ?? e.message}).\n` +
      `Install the pinned SDK first: (cd ${here} && npm ci) — scripts/test does this.`);
    process.exit(1);
  }
}

// { emulatorPath, genPath } from argv, or exit 2 with the usage of `script`.
export function emulatorArgs(script) {
  const args = process.argv.slice(2);
  const argOf = (n) => (args.indexOf(n) >= 0 ? args[args.indexOf(n) + 1] : undefined);
  const emulatorPath = argOf("--emulator");
  const genPath = argOf("--gen");
  if (!emulatorPath || !genPath) {
    console.error(`usage: node ${script} --emulator PATH --gen PATH`);
    process.exit(2);
  }
  return { emulatorPath, genPath };
}

// check(cond, what, got, want) prints a FAIL line when cond is false; failures() counts them.
export function checker() {
  let failures = 0;
  const check = (cond, what, got, want) => {
    if (cond) return;
    failures++;
    console.error(`FAIL: ${what}` + (got !== undefined || want !== undefined
      ? ` (got ${JSON.stringify(got)}, want ${JSON.stringify(want)})` : ""));
  };
  return { check, failures: () => failures };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
