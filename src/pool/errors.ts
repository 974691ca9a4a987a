// Errors raised by the pool layer. The dispatcher turns PoolFullError into
// Redis's OOM reply; PoolFormatError stops start-up with the reason.

/** No free chunk or page is left for an allocation. */
export class PoolFullError extends Error {
  constructor(message = 'pool is full') {
    super(message);
    this.name = 'PoolFullError';
  }
}

/** An existing pool (or image) cannot be attached: wrong magic, version or geometry. */
export class PoolFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PoolFormatError';
  }
}
