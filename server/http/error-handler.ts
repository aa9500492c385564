import type { ErrorRequestHandler } from 'express';
import { HttpError, TooManyFailuresError } from '../errors.js';

/** Body-parser errors carry a `type`; each one is the client's fault, and says so. */
const BODY_ERRORS: Record<string, [number, string]> = {
  'entity.parse.failed': [400, 'The body is not valid JSON.'],
  'entity.too.large': [413, 'The body is too large (16 KB at most).'],
  'encoding.unsupported': [415, 'Unsupported content encoding.'],
  'charset.unsupported': [415, 'Unsupported charset; send UTF-8.'],
  'request.aborted': [400, 'The request was aborted.'],
};

/** The status and body an error answers with: its own (an HttpError, a client's mistake), else a 500 without details. */
function answerOf(error: unknown): { status: number; body: Record<string, unknown>; unexpected: boolean } {
  if (error instanceof HttpError)
    return {
      status: error.status,
      body: { error: error.code, message: error.message, ...error.details },
      unexpected: false,
    };
  const { type, status, message } = (error ?? {}) as { type?: unknown; status?: unknown; message?: unknown };
  if (typeof type === 'string' && BODY_ERRORS[type]) {
    const [bodyStatus, text] = BODY_ERRORS[type];
    return { status: bodyStatus, body: { error: type, message: text }, unexpected: false };
  }
  // Express's own client errors, e.g. a path that is not valid percent-encoding ("/api/flags/%").
  if (error instanceof URIError || (Number(status) >= 400 && Number(status) < 500)) {
    return {
      status: error instanceof URIError ? 400 : Number(status),
      body: { error: 'bad_request', message: `The request is malformed: ${String(message).slice(0, 200)}` },
      unexpected: false,
    };
  }
  return { status: 500, body: { error: 'internal', message: 'Something went wrong on our side.' }, unexpected: true };
}

/**
 * The one handler that turns errors into responses: JSON under /api and for clients that ask for
 * it, an HTML page for a browser. Anything unexpected is a bug: logged, and a 500 without details.
 */
export const errorHandler: ErrorRequestHandler = (error, req, res, _next) => {
  const { status, body, unexpected } = answerOf(error);
  if (unexpected) req.log.error({ err: error }, 'unhandled error');
  if (res.headersSent) return;
  res.status(status);
  if (error instanceof TooManyFailuresError) res.set('Retry-After', String(error.retryAfterSeconds));
  if (!req.path.startsWith('/api') && req.accepts(['json', 'html']) === 'html')
    res.render('error', { status, message: body.message });
  else res.json(body);
};
