// Whether RDMA tests can run here, and describeRdma() to gate suites on it.
// RDMA needs a device and rdma_cm (this host's kernel has neither; the tests
// run inside ../shared/rxe-vm/run, which provides soft-RoCE rxe0 and sets
// RXE_ADDR to its address, the one both ends of a test must use).
import { rdmaUnavailableReason } from '../../src/transport/rdma-link';

export interface RdmaTestEnv {
  available: boolean;
  /** Why the RDMA tests cannot run (or a short "ready" note when they can). */
  reason: string;
  /** The address to listen on and connect to (process.env.RXE_ADDR); '' when unset. */
  host: string;
}

let cached: RdmaTestEnv | null = null;

export function rdmaTestEnv(): RdmaTestEnv {
  if (cached) return cached;
  const host = process.env.RXE_ADDR ?? '';
  const unavailable = rdmaUnavailableReason();
  if (unavailable !== null) {
    cached = { available: false, reason: unavailable, host };
  } else if (host === '') {
    cached = {
      available: false,
      reason: 'RXE_ADDR is not set (run the tests inside ../shared/rxe-vm/run, which sets it to the RDMA netdev address)',
      host,
    };
  } else {
    cached = { available: true, reason: `RDMA ready on ${host}`, host };
  }
  return cached;
}

/**
 * describe() for suites that need real RDMA. Without it the suite is skipped
 * with the reason in its title, or, when POOLKV_REQUIRE_RDMA=1 (CI inside the
 * VM), replaced by one failing test that names the reason.
 */
export function describeRdma(title: string, fn: (this: Mocha.Suite) => void): void {
  const env = rdmaTestEnv();
  if (env.available) {
    describe(title, fn);
    return;
  }
  if (process.env.POOLKV_REQUIRE_RDMA === '1') {
    describe(title, function () {
      it('has RDMA available (POOLKV_REQUIRE_RDMA=1)', function () {
        throw new Error(`RDMA is required here but unavailable: ${env.reason}`);
      });
    });
    return;
  }
  describe.skip(`${title} (skipped: ${env.reason})`, fn);
}
