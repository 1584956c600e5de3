// The README's configuration table, made from CONFIG_KEYS so the two cannot drift
// (test/config.test.ts checks the README holds exactly this table).
import { CONFIG_KEYS, type KeySpec } from "./config.js";

export function configTable(): string {
  const rows = (Object.entries(CONFIG_KEYS) as Array<[string, KeySpec]>).map(([key, s]) => {
    const def = s.default === undefined ? "" : `\`${String(s.default)}\``;
    const what = `${s.description}${s.secret ? " **Secret.**" : ""}${s.ignoredBecause ? ` **Ignored:** ${s.ignoredBecause}.` : ""}`;
    return `| \`vmware:${key}\` | ${def} | ${s.env.map((e) => `\`${e}\``).join(", ")} | ${s.nova} | ${what} |`;
  });
  return ["| key | default | environment fallback | Nova option | meaning |", "| --- | --- | --- | --- | --- |", ...rows].join("\n");
}
