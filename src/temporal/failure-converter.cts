/**
 * Failure converter for the worker (activities and the workflow sandbox) and every client: the default converter with
 * `encodeCommonAttributes`, so a failure's message and stack trace travel as an encoded payload (which the payload codec
 * then encrypts) instead of plaintext in history. Sage error texts end up in failure messages; history must not hold
 * them in the clear. Failures recorded before this (plain `message`) still decode: `encodedAttributes` is read only when
 * present. CommonJS (`.cts` → `.cjs`) because the SDK loads it with `require(failureConverterPath)`.
 */
import { DefaultFailureConverter } from '@temporalio/common';

export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
