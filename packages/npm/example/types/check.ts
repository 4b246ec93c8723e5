// Type-checked by `tsc -p tsconfig.json` (scripts/packages.sh): rehearsal-mock's hand-written
// .d.ts must accept what its README shows and refuse what the control plane would refuse.
import { ControlError, startRehearsal, type Rehearsal, type Tenant } from 'rehearsal-mock';
import { test } from 'rehearsal-mock/vitest';

export async function usage(): Promise<void> {
  const rh: Rehearsal = await startRehearsal({ args: ['--journal-size', '100'], startupTimeoutMs: 10_000 });
  const tenant: Tenant = await rh.tenant();
  const token: string = await tenant.token('alice', { ttl: 60 });
  const dropped: number[] = (await tenant.drop('alice')).sessions;
  await tenant.close({ session: 1 }, 308, { backoffMs: 10 });
  await tenant.expireToken();
  await tenant.warnTokenExpiry({ identity: 'bob' });
  const now: number = (await tenant.clock.advance(1_000)).now;
  const fault = await tenant.faults.http({ path: '/v1/Conversations', fault: { kind: 'fail', status: 503 } });
  await fault.remove();
  const summary: string = (await tenant.journal({ kind: ['rest', 'fault'] })).entries[0].summary;
  const seq: number = (await tenant.journal.waitFor({ kind: 'rest' }, { timeoutMs: 100 })).seq;
  await tenant.post({ as: 'bob', conversation: 'general', body: 'hi' });
  const sid: string = tenant.env.TWILIO_ACCOUNT_SID;
  // @ts-expect-error: a target is an identity, {identity}, {session}, or nothing
  await tenant.drop(42);
  // @ts-expect-error: a fault says what it does
  await tenant.faults.http({ path: '/v1/Conversations', fault: { status: 503 } });
  // @ts-expect-error: advance takes milliseconds
  await tenant.clock.advance('1h');
  await tenant.delete();
  await rh.stop();
  void [token, dropped, now, summary, seq, sid];
}

export function isControlError(e: unknown): string | undefined {
  return e instanceof ControlError ? `${e.status} ${e.code}` : undefined;
}

test('the fixtures are typed', async ({ rehearsal, tenant }) => {
  const url: string = rehearsal.url;
  const sid: string = tenant.accountSid;
  void [url, sid];
});
