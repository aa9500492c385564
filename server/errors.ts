/**
 * One error class per HTTP meaning, and one handler (in app.ts) that turns them into responses.
 * Anything else that escapes a route is a bug and answers 500 without details.
 */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class BadRequestError extends HttpError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(400, 'bad_request', message, details);
  }
}

/** A flag definition that is not a valid flagd flag; `field` names the member at fault. */
export class FlagValidationError extends HttpError {
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(400, 'invalid_flag', field ? `${field}: ${reason}` : reason, { field });
  }
}

export class UnauthorizedError extends HttpError {
  constructor(
    message = 'A valid token is required: send "Authorization: Bearer <token>" (ADMIN_TOKEN, or one made with npm run token).',
  ) {
    super(401, 'unauthorized', message);
  }
}

/** Authenticated, but not allowed: a read-only token writing, a write from another site. */
export class ForbiddenError extends HttpError {
  constructor(message: string, code = 'forbidden') {
    super(403, code, message);
  }
}

/** Too many failed authentications from one address; `Retry-After` says when to try again. */
export class TooManyFailuresError extends HttpError {
  constructor(readonly retryAfterSeconds: number) {
    super(
      429,
      'too_many_failures',
      `Too many failed authentications from this address. Try again in ${retryAfterSeconds} s.`,
      { retryAfter: retryAfterSeconds },
    );
  }
}

export class NotFoundError extends HttpError {
  constructor(message: string) {
    super(404, 'not_found', message);
  }
}

/** The request is sound but the state does not allow it now (a ramp of a switch that is not killed). */
export class ConflictError extends HttpError {
  constructor(message: string, code = 'conflict') {
    super(409, code, message);
  }
}

export class PreconditionFailedError extends HttpError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(412, 'version_conflict', message, details);
  }
}

export class UnsupportedMediaTypeError extends HttpError {
  constructor(message: string) {
    super(415, 'unsupported_media_type', message);
  }
}

export class ReadOnlyError extends HttpError {
  constructor(message: string) {
    super(405, 'read_only', message);
  }
}

export class ServiceUnavailableError extends HttpError {
  constructor(message: string) {
    super(503, 'unavailable', message);
  }
}
