// Passkeys through the browser's WebAuthn API. The daemon answers its options as WebAuthn's JSON
// (`{ publicKey: … }`, binary fields in base64url), which the browser parses itself; the
// credential goes back as the browser's own `toJSON()`.

/** Whether this browser can make and use passkeys with the daemon's JSON options. */
export function browserHasPasskeys(): boolean {
  return typeof PublicKeyCredential !== 'undefined'
    && typeof PublicKeyCredential.parseCreationOptionsFromJSON === 'function'
    && typeof PublicKeyCredential.parseRequestOptionsFromJSON === 'function'
    && typeof navigator.credentials?.create === 'function';
}

/** The `publicKey` member of the daemon's ceremony options. */
function publicKey(options: Record<string, unknown>): unknown {
  const inner = options.publicKey;
  if (typeof inner !== 'object' || inner === null) throw new PasskeyError('The server sent passkey options this panel does not understand.');
  return inner;
}

/** A passkey ceremony that did not complete, in words for the person. */
export class PasskeyError extends Error {}

/** The browser's refusal in plain words. */
function explainRefusal(err: unknown, making: boolean): PasskeyError {
  if (err instanceof PasskeyError) return err;
  const name = err instanceof DOMException ? err.name : '';
  if (name === 'NotAllowedError' || name === 'AbortError') {
    return new PasskeyError('The passkey request was cancelled or timed out. Try again when you are ready.');
  }
  if (name === 'InvalidStateError' && making) {
    return new PasskeyError('This device already holds a passkey for your account: it is in the list.');
  }
  if (name === 'SecurityError') {
    return new PasskeyError('This browser refused a passkey for this address.');
  }
  if (name === 'NotSupportedError') {
    return new PasskeyError('This device cannot make a passkey of the kind needed.');
  }
  return new PasskeyError(`The passkey did not work${err instanceof Error && err.message ? `: ${err.message}` : ''}.`);
}

/** Makes a passkey with `options` from `POST /account/passkeys/begin`; answers the credential's JSON. */
export async function createPasskey(options: Record<string, unknown>): Promise<Record<string, unknown>> {
  try {
    const parsed = PublicKeyCredential.parseCreationOptionsFromJSON(publicKey(options) as PublicKeyCredentialCreationOptionsJSON);
    const credential = await navigator.credentials.create({ publicKey: parsed });
    if (!(credential instanceof PublicKeyCredential)) throw new PasskeyError('No passkey was made.');
    return credential.toJSON() as Record<string, unknown>;
  } catch (err) {
    throw explainRefusal(err, true);
  }
}

/** Signs with a passkey for `options` from `POST /auth/second-factor/passkey`; answers the credential's JSON. */
export async function usePasskey(options: Record<string, unknown>): Promise<Record<string, unknown>> {
  try {
    const parsed = PublicKeyCredential.parseRequestOptionsFromJSON(publicKey(options) as PublicKeyCredentialRequestOptionsJSON);
    const credential = await navigator.credentials.get({ publicKey: parsed });
    if (!(credential instanceof PublicKeyCredential)) throw new PasskeyError('No passkey was used.');
    return credential.toJSON() as Record<string, unknown>;
  } catch (err) {
    throw explainRefusal(err, false);
  }
}
