// The error a promise rejects with, for tests that inspect it (its class, code and
// fields) rather than only its message; fails the test when the promise resolves.
export async function rejection(p: Promise<unknown>): Promise<Error> {
  const outcome = await p.then(
    (value) => ({ ok: true as const, value }),
    (err: unknown) => ({ ok: false as const, err }),
  );
  if (outcome.ok) throw new Error(`expected a rejection, got ${JSON.stringify(outcome.value)}`);
  return outcome.err as Error;
}
