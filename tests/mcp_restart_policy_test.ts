// The supervisor's restart policy on an injected clock: the delay doubles up to its ceiling, starts over
// after a healthy spell, and too many restarts within the window mean giving up.

import assert from "node:assert/strict";
import { DEFAULT_LIMITS, RestartPolicy } from "../components/mcp/restart_policy.ts";

function clock() {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

Deno.test("RestartPolicy doubles the delay from 0.1 s up to 10 s", () => {
  const c = clock();
  const p = new RestartPolicy({ ...DEFAULT_LIMITS, maxRestarts: 100 }, c.now);
  const delays = [];
  for (let i = 0; i < 10; i++) {
    const d = p.died();
    assert.equal(d.action, "restart");
    if (d.action === "restart") delays.push(d.delay);
    p.started();
  }
  assert.deepEqual(delays, [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]);
});

Deno.test("RestartPolicy starts the delay over after 60 s of health", () => {
  const c = clock();
  const p = new RestartPolicy(DEFAULT_LIMITS, c.now);
  const delay = () => {
    const d = p.died();
    p.started();
    return d.action === "restart" ? d.delay : -1;
  };
  assert.deepEqual([delay(), delay(), delay()], [100, 200, 400]);
  c.advance(59_999);
  assert.equal(delay(), 800);
  c.advance(60_000);
  assert.equal(delay(), 100);
});

Deno.test("RestartPolicy gives up at the 11th death within 60 s, not when deaths are spread out", () => {
  const cases = [
    { label: "11 deaths 1 s apart", gap: 1000, deaths: 11, last: "give-up" },
    { label: "11 deaths 6.1 s apart", gap: 6100, deaths: 11, last: "restart" },
    { label: "10 deaths 1 s apart", gap: 1000, deaths: 10, last: "restart" },
  ];
  for (const c of cases) {
    const k = clock();
    const p = new RestartPolicy(DEFAULT_LIMITS, k.now);
    const actions = [];
    for (let i = 0; i < c.deaths; i++) {
      k.advance(c.gap);
      actions.push(p.died().action);
      p.started();
    }
    assert.equal(actions.at(-1), c.last, c.label);
    assert.ok(actions.slice(0, -1).every((a) => a === "restart"), c.label);
  }
  const k = clock();
  const p = new RestartPolicy(DEFAULT_LIMITS, k.now);
  for (let i = 0; i < 10; i++) p.died();
  assert.deepEqual(p.died(), { action: "give-up", reason: "10 restarts within 60 s" });
});
