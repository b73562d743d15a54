/** Describes the machine a benchmark ran on. Run directly to print it. */
import os from 'node:os';
import { isEntry } from './paths.js';

export interface MachineInfo {
  cpuModel: string;
  cpus: number;
  availableParallelism: number;
  totalMemGiB: number;
  platform: string;
  arch: string;
  osRelease: string;
  node: string;
  v8: string;
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim().replace(/\s+/g, ' ') ?? 'unknown',
    cpus: cpus.length,
    availableParallelism: typeof os.availableParallelism === 'function' ? os.availableParallelism() : cpus.length,
    totalMemGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    platform: os.platform(),
    arch: os.arch(),
    osRelease: os.release(),
    node: process.version,
    v8: process.versions.v8,
  };
}

export function formatMachine(m: MachineInfo = machineInfo()): string {
  return [
    `CPU: ${m.cpuModel} x ${m.cpus} (available parallelism ${m.availableParallelism})`,
    `Memory: ${m.totalMemGiB} GiB`,
    `OS: ${m.platform} ${m.arch} ${m.osRelease}`,
    `Node: ${m.node} (V8 ${m.v8})`,
  ].join('\n');
}

if (isEntry(import.meta.url)) {
  console.log(formatMachine());
}
