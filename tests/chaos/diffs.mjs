// Diff records as tests read them from a diff_log file: shared by the resilience tests
// (harness.mjs) and tests/sdk/service-e2e.mjs. No side effects on import.
import { existsSync, readFileSync } from "node:fs";

// Complete lines only: a running service may be writing the last one while we read.
export function readDiffs(path) {
  if (!existsSync(path)) return [];
  const lines = readFileSync(path, "utf8").split("\n");
  lines.pop(); // "" after the last newline, or a line not yet complete
  return lines.filter((l) => l.length > 0).map((l) => JSON.parse(l));
}

// A diff record's identity: what it says, not where it was read (offsets differ between runs).
export function diffKey(rec) {
  const newKeys = rec.new.map((f) => f.key).sort();
  const resolved = [...rec.resolved].sort();
  return JSON.stringify([rec.image, rec.scan_time, newKeys, resolved]);
}
