// How `npm test` runs the RDMA tests: test/rdma/**/*.test.ts need an RDMA
// device, which this machine's kernel may not have, so they run inside the
// soft-RoCE VM of scripts/rxe-vm (Debian's kernel under qemu, rxe0 on a dummy
// netdev, the host's filesystem shared) with POOLKV_REQUIRE_RDMA=1, which
// turns any RDMA skip inside the VM into a failure. They run twice: against
// the addon `npm ci` built, and against the AddressSanitizer build from
// cmake-js (`npm run build:native:asan`), loaded with libasan preloaded into
// node. (.mocharc.json keeps test/rdma out of the host's own run.)
//
// Run or skip: the tests run when `scripts/rxe-vm/run --check` says this
// machine can boot the VM (Linux/x86_64, qemu installed or installable as
// root, a Debian kernel package cached or fetchable) and the addon was built
// with RDMA. Otherwise they are skipped with the reason printed, or fail with
// it when POOLKV_REQUIRE_RDMA=1 is set on the host, as CI does.
// POOLKV_VM_DISABLE=<why> tells the runner not to boot VMs on this machine.
import { strict as assert } from 'assert';
import { spawn, spawnSync, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { nativeCapabilities } from '../src/transport/native';

const ROOT = path.resolve(__dirname, '../..'); // this file runs as dist/test/rdma-vm.test.js
const RUNNER = path.join(ROOT, 'scripts/rxe-vm/run');
const RDMA_TEST_DIR = path.join(ROOT, 'dist/test/rdma');
const RDMA_SPEC = 'dist/test/rdma/**/*.test.js';
/** What the ASan pass runs: all of test/rdma unless narrowed (a glob under dist/), e.g. to save CI time. */
const ASAN_SPEC = process.env.POOLKV_RDMA_ASAN_SPEC || RDMA_SPEC;
const ASAN_ADDON = path.join(ROOT, 'build/cmake-asan/Release/poolkv_native.node');
const ASAN_LOG_DIR = path.join(ROOT, 'build/asan-vm-logs');
const REQUIRED = process.env.POOLKV_REQUIRE_RDMA === '1';

/** Limit for one VM run (boot + the whole RDMA suite under TCG), seconds. */
const VM_TIMEOUT_S = 20 * 60;
/**
 * Mocha's limit for a VM test: the VM's own limit, plus time to wait for a VM
 * slot (scripts/rxe-vm/run queues VMs beyond the host's CPUs, e.g. when two
 * `npm test`s share a 2-core machine) and to shut down.
 */
const VM_TEST_TIMEOUT_MS = (2 * VM_TIMEOUT_S + 120) * 1000;
/** Per-test timeout inside the VM: TCG makes everything several times slower. */
const GUEST_TEST_TIMEOUT_MS = 180_000;
const PREFIX = '      │ ';

function rdmaTestFiles(dir = RDMA_TEST_DIR): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return rdmaTestFiles(full);
    return entry.name.endsWith('.test.js') ? [full] : [];
  });
}

/** Why the RDMA tests cannot run in the VM on this machine, or null when they can (with what the runner said). */
function vmUnavailable(): { reason: string } | { reason: null; runner: string } {
  if (process.platform !== 'linux') return { reason: `the soft-RoCE VM needs Linux (this is ${process.platform})` };
  const check = spawnSync(RUNNER, ['--check'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  if (check.error) return { reason: `scripts/rxe-vm/run --check did not run: ${check.error.message}` };
  const said = `${check.stdout}${check.stderr}`.trim();
  if (check.status !== 0) return { reason: `the soft-RoCE VM cannot run here: ${said.replace(/^no: /, '')}` };
  const capabilities = nativeCapabilities();
  if (!capabilities.rdma) {
    return { reason: `the native addon was built without RDMA, so there is nothing to test: ${capabilities.reason}` };
  }
  if (rdmaTestFiles().length === 0) return { reason: `no RDMA test files under ${RDMA_TEST_DIR} (npm run build)` };
  return { reason: null, runner: said.replace(/^yes: /, '') };
}

/** Skip the suite with the reason on the console, or fail with it under POOLKV_REQUIRE_RDMA=1. */
function skipOrFail(context: Mocha.Context, reason: string): never {
  if (REQUIRED) throw new Error(`POOLKV_REQUIRE_RDMA=1 requires the RDMA tests to run, but ${reason}`);
  console.log(`    RDMA tests SKIPPED: ${reason}`);
  console.log('    (they run in a soft-RoCE VM where the machine allows; POOLKV_REQUIRE_RDMA=1 makes this skip a failure)');
  context.skip();
}

interface GuestRun {
  status: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  summary: { passed: number; failed: number; skipped: number } | null;
  seconds: number;
}

let running: ChildProcess | null = null;

/**
 * Run the RDMA test files with mocha inside the VM, streaming the VM's output
 * (indented) as it comes. guestEnv is set for the guest's mocha only, through
 * env(1) inside the VM, so that LD_PRELOAD=libasan never touches the host's
 * qemu.
 */
function runRdmaTestsInVm(guestEnv: Record<string, string>, spec = RDMA_SPEC): Promise<GuestRun> {
  const mocha = path.relative(ROOT, require.resolve('mocha/bin/mocha.js'));
  const guestCommand = [
    'env',
    ...Object.entries({ POOLKV_REQUIRE_RDMA: '1', ...guestEnv }).map(([name, value]) => `${name}=${value}`),
    process.execPath,
    mocha,
    '--no-config',
    '--exit',
    '--timeout',
    String(GUEST_TEST_TIMEOUT_MS),
    '--slow',
    '10000',
    '--reporter',
    './test/support/summary-reporter.js',
    spec,
  ];
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(RUNNER, ['--cwd', ROOT, '--timeout', String(VM_TIMEOUT_S), '--', ...guestCommand], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running = child;
    let output = '';
    let stdout = '';
    const pending = { stdout: '', stderr: '' };
    const relay = (stream: 'stdout' | 'stderr') => (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      output += text;
      if (stream === 'stdout') stdout += text;
      const lines = (pending[stream] + text).split('\n');
      pending[stream] = lines.pop() ?? '';
      for (const line of lines) process.stdout.write(`${PREFIX}${line}\n`);
    };
    child.stdout.on('data', relay('stdout'));
    child.stderr.on('data', relay('stderr'));
    child.once('error', reject);
    child.once('close', (status, signal) => {
      running = null;
      for (const rest of [pending.stdout, pending.stderr]) if (rest) process.stdout.write(`${PREFIX}${rest}\n`);
      const match = /^mocha: (\d+) passed, (\d+) failed, (\d+) skipped$/m.exec(stdout);
      resolve({
        status,
        signal,
        output,
        summary: match ? { passed: Number(match[1]), failed: Number(match[2]), skipped: Number(match[3]) } : null,
        seconds: Math.round((Date.now() - started) / 1000),
      });
    });
  });
}

function describeExit(run: GuestRun): string {
  if (run.signal) return `scripts/rxe-vm/run was killed by ${run.signal}`;
  if (run.status === 124) return 'the VM run timed out (scripts/rxe-vm/run exited 124)';
  if (run.status === 125) return 'the VM could not be set up or booted (scripts/rxe-vm/run exited 125)';
  return `the guest's mocha exited with ${run.status}`;
}

function summaryText(run: GuestRun): string {
  const s = run.summary;
  return s ? `${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped` : 'no mocha summary line in the output';
}

/** Fail unless the guest's mocha exited 0 having passed at least one test and failed none. */
function assertGuestPassed(run: GuestRun, what: string, extra = ''): void {
  const ok = run.status === 0 && run.summary !== null && run.summary.passed > 0 && run.summary.failed === 0;
  if (ok && !extra) return;
  const tail = run.output.trimEnd().split('\n').slice(-120).join('\n');
  assert.fail(
    `${what}: ${ok ? 'passed' : describeExit(run)}; ${summaryText(run)} (VM run ${run.seconds}s)` +
      `${extra}\n--- last lines of the VM's output:\n${tail}`,
  );
}

/** The AddressSanitizer build is stale when any file under native/ is newer. */
function asanBuildIsCurrent(): boolean {
  if (!fs.existsSync(ASAN_ADDON)) return false;
  const built = fs.statSync(ASAN_ADDON).mtimeMs;
  const newest = (dir: string): number =>
    Math.max(
      0,
      ...fs.readdirSync(dir, { withFileTypes: true }).map((entry) => {
        const full = path.join(dir, entry.name);
        return entry.isDirectory() ? newest(full) : fs.statSync(full).mtimeMs;
      }),
    );
  return newest(path.join(ROOT, 'native')) <= built;
}

describe('RDMA tests in the soft-RoCE VM (scripts/rxe-vm)', function () {
  before(function () {
    const verdict = vmUnavailable();
    if (verdict.reason !== null) skipOrFail(this, verdict.reason);
    console.log(`    running ${rdmaTestFiles().length} RDMA test file(s) in the VM: ${verdict.runner}`);
  });

  after(function () {
    running?.kill('SIGTERM'); // the runner stops its VM on SIGTERM
  });

  it('dist/test/rdma passes in the VM (addon from npm ci)', async function () {
    this.timeout(VM_TEST_TIMEOUT_MS);
    const run = await runRdmaTestsInVm({});
    assertGuestPassed(run, 'RDMA tests in the VM');
    console.log(`    VM: ${summaryText(run)} in ${run.seconds}s`);
  });

  describe('with the AddressSanitizer build of the addon', function () {
    let libasan = '';

    before(function () {
      this.timeout(15 * 60_000);
      const found = spawnSync('gcc', ['-print-file-name=libasan.so'], { encoding: 'utf8' });
      libasan = (found.stdout ?? '').trim();
      if (found.status !== 0 || !path.isAbsolute(libasan) || !fs.existsSync(libasan)) {
        skipOrFail(this, `gcc's libasan.so was not found (Debian: build-essential), so the ASan build cannot be loaded`);
      }
      if (!asanBuildIsCurrent()) {
        const started = Date.now();
        // flock: two `npm test`s in one checkout must not run cmake in build/cmake-asan at once.
        fs.mkdirSync(path.join(ROOT, 'build'), { recursive: true });
        const build = spawnSync('flock', [path.join(ROOT, 'build/.cmake-asan.lock'), 'npm', 'run', 'build:native:asan'], {
          cwd: ROOT,
          encoding: 'utf8',
        });
        if (build.status !== 0) {
          throw new Error(`npm run build:native:asan failed (${build.status}):\n${build.stdout}${build.stderr}`);
        }
        console.log(`    built the ASan addon (npm run build:native:asan) in ${Math.round((Date.now() - started) / 1000)}s`);
      }
      fs.mkdirSync(ASAN_LOG_DIR, { recursive: true });
      // Before spending a VM run on it: does node start with libasan preloaded,
      // and does the addon it loads then come from the ASan build?
      const probe = spawnSync(
        process.execPath,
        [
          '-e',
          `require(${JSON.stringify(path.join(ROOT, 'dist/src/transport/native.js'))}).loadNative();` +
            `process.stdout.write(require('fs').readFileSync('/proc/self/maps', 'utf8'))`,
        ],
        { encoding: 'utf8', env: { ...process.env, ...asanEnv(libasan) }, timeout: 60_000 },
      );
      assert.equal(probe.status, 0, `node with LD_PRELOAD=${libasan} failed: ${probe.stderr}`);
      assert.match(probe.stdout, /\/libasan\.so/, 'libasan is not mapped into node');
      assert.ok(probe.stdout.includes(ASAN_ADDON), `node did not load ${ASAN_ADDON}`);
    });

    it('dist/test/rdma passes in the VM with POOLKV_NATIVE_PATH=build/cmake-asan/…/poolkv_native.node', async function () {
      this.timeout(VM_TEST_TIMEOUT_MS);
      fs.rmSync(ASAN_LOG_DIR, { recursive: true, force: true });
      fs.mkdirSync(ASAN_LOG_DIR, { recursive: true });
      if (ASAN_SPEC !== RDMA_SPEC) console.log(`    ASan pass narrowed by POOLKV_RDMA_ASAN_SPEC to ${ASAN_SPEC}`);
      const run = await runRdmaTestsInVm(asanEnv(libasan), ASAN_SPEC);
      // Reports of every process (node, servers it spawned) land in ASAN_LOG_DIR:
      // a report from a child whose exit the tests tolerated still fails this test.
      const reports = fs.readdirSync(ASAN_LOG_DIR).map((name) => fs.readFileSync(path.join(ASAN_LOG_DIR, name), 'utf8'));
      const extra = reports.length ? `\n--- AddressSanitizer reports (${reports.length}):\n${reports.join('\n')}` : '';
      assertGuestPassed(run, 'RDMA tests in the VM with the ASan addon', extra);
      console.log(`    VM (ASan): ${summaryText(run)} in ${run.seconds}s, no AddressSanitizer reports`);
    });
  });
});

/**
 * How node loads the ASan addon: libasan must be the first library in the
 * process (LD_PRELOAD), or its runtime refuses to start. Leak detection is
 * off because node frees little at exit by design; abort_on_error makes a
 * report fatal (no silent continue); log_path collects the reports of every
 * process in the tree, one file per pid.
 */
function asanEnv(libasan: string): Record<string, string> {
  return {
    POOLKV_NATIVE_PATH: ASAN_ADDON,
    LD_PRELOAD: libasan,
    ASAN_OPTIONS: `detect_leaks=0:abort_on_error=1:log_path=${ASAN_LOG_DIR}/asan`,
  };
}
