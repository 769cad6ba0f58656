/**
 * Failure converter for the worker (activities and the workflow sandbox, via `failureConverterPath`) and every client:
 * the default converter with `encodeCommonAttributes`, so a failure's message and stack trace travel as an encoded
 * payload (which the payload codec then encrypts) instead of plaintext in history. Sage error texts (error
 * descriptions, response snippets) end up in failure messages; history must not hold them in the clear. Failures
 * recorded before this (plain `message`) still decode: the converter only reads `encodedAttributes` when present.
 */
import { DefaultFailureConverter } from '@temporalio/common';

export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
