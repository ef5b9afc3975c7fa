/**
 * DCB example "opt-in token": signing up sends a one-time token; confirming with it succeeds
 * once, only for the e-mail address it was issued to, and only within TOKEN_TTL_MS. The decision
 * reads the events tagged with the token, so two confirmations racing with the same token cannot
 * both succeed.
 *
 * Run: bun examples/opt-in-token.ts [store URL]   (default memory:)
 */
import { execute, type EventStore, type ExecuteOptions, type HandlerProjector } from '../ts/index.ts'
import { attempt, runExample } from './_run.ts'

/** How long a token stays valid. */
export const TOKEN_TTL_MS = 60 * 60 * 1000

/** The events of this example and their data. */
export type SignUpEvents = {
  SignUpInitiated: { email: string }
  SignUpConfirmed: { email: string }
}
type Store = EventStore<SignUpEvents>

interface TokenState {
  email: string | undefined
  issuedAt: Date | undefined
  used: boolean
}

function token(otp: string): HandlerProjector<TokenState, SignUpEvents> {
  return {
    initial: { email: undefined, issuedAt: undefined, used: false },
    tags: [`otp:${otp}`],
    when: {
      SignUpInitiated: (state, event) => ({ ...state, email: event.data.email, issuedAt: event.recordedAt }),
      SignUpConfirmed: (state) => ({ ...state, used: true }),
    },
  }
}

/** Start a sign-up: records a fresh token for the address and resolves to it (to be e-mailed). */
export async function initiateSignUp(store: Store, email: string): Promise<string> {
  const otp = crypto.randomUUID()
  await store.append({ type: 'SignUpInitiated', tags: [`email:${email}`, `otp:${otp}`], data: { email } })
  return otp
}

/** Confirm a sign-up with its token; `now` is injectable so expiry can be shown and tested. */
export function confirmSignUp(store: Store, email: string, otp: string, now = new Date(), options?: ExecuteOptions) {
  return execute(store, { type: 'ConfirmSignUp', data: { email } }, async ({ project }) => {
    const { state } = await project({ state: token(otp) })
    if (state.email === undefined || state.email !== email) throw new Error('no such token for this address')
    if (state.used) throw new Error('the token was already used')
    if (now.getTime() - state.issuedAt!.getTime() > TOKEN_TTL_MS) throw new Error('the token has expired')
    return { type: 'SignUpConfirmed', tags: [`email:${email}`, `otp:${otp}`], data: { email } }
  }, options)
}

if (import.meta.main) {
  await runExample<SignUpEvents>('Opt-in token', async (store) => {
    const otp = await initiateSignUp(store, 'ada@example.com')
    console.log('  issued a token to ada@example.com')
    await attempt('bob@example.com confirms with ada\'s token', () => confirmSignUp(store, 'bob@example.com', otp))
    await attempt('ada confirms with a made-up token', () => confirmSignUp(store, 'ada@example.com', 'guess'))
    await attempt('ada confirms', () => confirmSignUp(store, 'ada@example.com', otp))
    await attempt('ada confirms again', () => confirmSignUp(store, 'ada@example.com', otp))
    const late = await initiateSignUp(store, 'eve@example.com')
    const twoHoursLater = new Date(Date.now() + 2 * TOKEN_TTL_MS)
    await attempt('eve confirms two hours later', () => confirmSignUp(store, 'eve@example.com', late, twoHoursLater))
    const raced = await initiateSignUp(store, 'max@example.com')
    const outcomes = await Promise.allSettled(
      Array.from({ length: 5 }, () => confirmSignUp(store, 'max@example.com', raced)),
    )
    const won = outcomes.filter((outcome) => outcome.status === 'fulfilled').length
    console.log(`  5 concurrent confirmations of max's token: ${won} succeeded`)
  })
}
