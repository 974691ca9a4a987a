// Typed loader for the poolkv_native addon (native/poolkv_native.cc), built by
// `npm install` (node-gyp → build/Release) or cmake-js (build/cmake/Release).
// The RDMA snapshot transport will live in the addon; for now it reports what
// this build and host can do.
import * as fs from 'fs';
import * as path from 'path';

export interface NativeCapabilities {
  /** True when the addon was compiled against libibverbs/librdmacm. */
  rdma: boolean;
  /** Why RDMA is (un)usable, naming the packages to install when it is not compiled in. */
  reason: string;
  /** RDMA devices ibv_get_device_list() sees (0 when not compiled in). */
  devices: number;
  deviceNames: string[];
  /** Whether librdmacm could open an event channel (/dev/infiniband/rdma_cm). */
  rdmaCm: boolean;
}

export interface PoolkvNative {
  capabilities(): NativeCapabilities;
}

/** Where the built addon may be, relative to the package root; node-gyp's output first. */
const ADDON_LOCATIONS = ['build/Release/poolkv_native.node', 'build/cmake/Release/poolkv_native.node'];

function packageRoot(): string {
  // dist/src/transport/native.js is three levels below the root; src/transport/native.ts two.
  for (const up of ['../../..', '../..']) {
    const root = path.resolve(__dirname, up);
    if (fs.existsSync(path.join(root, 'package.json')) && fs.existsSync(path.join(root, 'native'))) return root;
  }
  return path.resolve(__dirname, '../../..');
}

let loaded: PoolkvNative | null = null;

/** Load the addon (once). Throws with build instructions when it has not been built. */
export function loadNative(): PoolkvNative {
  if (loaded) return loaded;
  const root = packageRoot();
  // POOLKV_NATIVE_PATH: use a specific build (e.g. the ASan one from cmake-js) instead of the default ones.
  const override = process.env.POOLKV_NATIVE_PATH;
  const candidates = override ? [path.resolve(override)] : ADDON_LOCATIONS.map((p) => path.join(root, p));
  const found = candidates.find((file) => fs.existsSync(file));
  if (!found) {
    throw new Error(`poolkv_native addon not built (looked for ${candidates.join(', ')}); run \`npm rebuild\` or \`npm ci\``);
  }
  // A .node file can only be loaded through require().
  loaded = require(found) as PoolkvNative;
  return loaded;
}

/** The addon's capabilities, or an explanation of why the addon itself is unavailable. */
export function nativeCapabilities(): NativeCapabilities {
  try {
    return loadNative().capabilities();
  } catch (err) {
    return { rdma: false, reason: (err as Error).message, devices: 0, deviceNames: [], rdmaCm: false };
  }
}
