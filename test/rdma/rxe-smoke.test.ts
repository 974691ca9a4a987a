// Smoke test of the RDMA environment itself: the native addon, built with
// RDMA, sees an RDMA device (rxe0 in the soft-RoCE VM of scripts/rxe-vm) and
// can open an rdma_cm event channel, ibv_devinfo shows the port ACTIVE, and
// memory can be pinned without limit. When this fails in the VM, the RDMA
// transport tests next to it cannot mean anything.
//
// Like every file in test/rdma it needs an RDMA device: test/rdma-vm.test.ts
// runs it inside the VM (with POOLKV_REQUIRE_RDMA=1). describeRdma skips it
// elsewhere with the reason, or fails with it when POOLKV_REQUIRE_RDMA=1.
import { strict as assert } from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import { nativeCapabilities } from '../../src/transport/native';
import { describeRdma } from '../helpers/rdma-env';

/** The soft-RoCE device the VM created (scripts/rxe-vm sets RXE_DEV); unset elsewhere. */
const expectedDevice = process.env.RXE_DEV;

describeRdma('RDMA environment smoke test (soft-RoCE)', function () {
  const capabilities = nativeCapabilities();

  it('the addon sees the RDMA device and can open an rdma_cm event channel', function () {
    assert.ok(capabilities.devices >= 1, capabilities.reason);
    if (expectedDevice) {
      assert.ok(
        capabilities.deviceNames.includes(expectedDevice),
        `${expectedDevice} not among the devices the addon sees: ${capabilities.deviceNames.join(', ')}`,
      );
    }
    assert.equal(capabilities.rdmaCm, true, capabilities.reason);
  });

  it('ibv_devinfo shows the port ACTIVE', function () {
    const device = expectedDevice ?? capabilities.deviceNames[0];
    const result = spawnSync('ibv_devinfo', ['-d', device], { encoding: 'utf8', timeout: 30000 });
    assert.equal(result.error, undefined, `ibv_devinfo: ${result.error?.message} (Debian: ibverbs-utils)`);
    assert.equal(result.status, 0, `ibv_devinfo -d ${device} exited with ${result.status}: ${result.stderr}`);
    assert.match(result.stdout, new RegExp(`hca_id:\\s+${device}\\b`));
    assert.match(result.stdout, /state:\s+PORT_ACTIVE/);
  });

  it('locked memory is unlimited in the VM (ibv_reg_mr pins what it registers)', function () {
    if (!expectedDevice) this.skip(); // elsewhere the limit is the machine's business
    const limits = fs.readFileSync('/proc/self/limits', 'utf8');
    assert.match(limits, /^Max locked memory\s+unlimited\s+unlimited/m);
  });
});
