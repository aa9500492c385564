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
  constructor(message = 'A valid admin token is required: send "Authorization: Bearer <ADMIN_TOKEN>".') {
    super(401, 'unauthorized', message);
  }
}

export class NotFoundError extends HttpError {
  constructor(message: string) {
    super(404, 'not_found', message);
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
