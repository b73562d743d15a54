/**
 * The `sharedmap` package (a fixed-size hash map of strings in a
 * SharedArrayBuffer, with line locks), typed as it is at run time: Node
 * loads its UMD build, whose module.exports is the class (so an ES import
 * sees it as `default`), while its typings declare a named export.
 */
import * as pkg from 'sharedmap';

export interface SharedMapLike {
  set(key: string, value: string | number): void;
  get(key: string): string | undefined;
  has(key: string): boolean;
  delete(key: string): void;
}

export interface SharedMapCtor {
  new (maxSize: number, keySize: number, objSize: number): SharedMapLike;
  prototype: object;
}

export const SharedMap = (pkg as unknown as { default: SharedMapCtor }).default;
