/**
 * DCB example "unique username": a username can be claimed by one account at a time. It is
 * released when its account is closed or changes to another username, and can be claimed again.
 * No "usernames" aggregate or unique index: the decision reads the events tagged with the
 * username, and the condition fails if one was appended in the meantime.
 *
 * Run: bun examples/unique-username.ts [store URL]   (default memory:)
 */
import { execute, type EventStore, type ExecuteOptions, type HandlerProjector } from '../ts/index.ts'
import { attempt, runExample } from './_run.ts'

/** The events of this example and their data. */
export type AccountEvents = {
  AccountRegistered: { accountId: string; username: string }
  AccountClosed: { accountId: string; username: string | undefined }
  UsernameChanged: { accountId: string; oldUsername: string | undefined; newUsername: string }
}
type Store = EventStore<AccountEvents>

const usernameTag = (username: string) => `username:${username}`
const accountTag = (accountId: string) => `account:${accountId}`

/** Whether `username` is claimed right now, by the last event that mentions it. */
function usernameClaimed(username: string): HandlerProjector<boolean, AccountEvents> {
  return {
    initial: false,
    tags: [usernameTag(username)],
    when: {
      AccountRegistered: () => true,
      AccountClosed: () => false,
      UsernameChanged: (_, event) => event.data.newUsername === username,
    },
  }
}

interface Account {
  open: boolean
  username: string | undefined
}

function account(accountId: string): HandlerProjector<Account, AccountEvents> {
  return {
    initial: { open: false, username: undefined },
    tags: [accountTag(accountId)],
    when: {
      AccountRegistered: (_, event) => ({ open: true, username: event.data.username }),
      AccountClosed: () => ({ open: false, username: undefined }),
      UsernameChanged: (state, event) => ({ ...state, username: event.data.newUsername }),
    },
  }
}

/** Register an account under a username; refused when the username is taken or the account exists. */
export function registerAccount(store: Store, accountId: string, username: string, options?: ExecuteOptions) {
  return execute(store, { type: 'RegisterAccount', data: { accountId, username } }, async ({ project }) => {
    const { taken, existing } = await project({ taken: usernameClaimed(username), existing: account(accountId) })
    if (taken) throw new Error(`username "${username}" is taken`)
    if (existing.open) throw new Error(`account ${accountId} already exists`)
    return {
      type: 'AccountRegistered',
      tags: [accountTag(accountId), usernameTag(username)],
      data: { accountId, username },
    }
  }, options)
}

/** Move an account to another username, releasing the old one. */
export function changeUsername(store: Store, accountId: string, newUsername: string, options?: ExecuteOptions) {
  return execute(store, { type: 'ChangeUsername', data: { accountId, newUsername } }, async ({ project }) => {
    const { current, taken } = await project({ current: account(accountId), taken: usernameClaimed(newUsername) })
    if (!current.open) throw new Error(`account ${accountId} does not exist`)
    if (current.username === newUsername) throw new Error(`account ${accountId} already uses "${newUsername}"`)
    if (taken) throw new Error(`username "${newUsername}" is taken`)
    return {
      type: 'UsernameChanged',
      tags: [accountTag(accountId), usernameTag(current.username!), usernameTag(newUsername)],
      data: { accountId, oldUsername: current.username, newUsername },
    }
  }, options)
}

/** Close an account, releasing its username. */
export function closeAccount(store: Store, accountId: string, options?: ExecuteOptions) {
  return execute(store, { type: 'CloseAccount', data: { accountId } }, async ({ project }) => {
    const { current } = await project({ current: account(accountId) })
    if (!current.open) throw new Error(`account ${accountId} does not exist`)
    return {
      type: 'AccountClosed',
      tags: [accountTag(accountId), usernameTag(current.username!)],
      data: { accountId, username: current.username },
    }
  }, options)
}

if (import.meta.main) {
  await runExample<AccountEvents>('Unique username', async (store) => {
    await attempt('a1 registers "ada"', () => registerAccount(store, 'a1', 'ada'))
    await attempt('a2 registers "ada"', () => registerAccount(store, 'a2', 'ada'))
    await attempt('a2 registers "bob"', () => registerAccount(store, 'a2', 'bob'))
    await attempt('a2 changes to "ada"', () => changeUsername(store, 'a2', 'ada'))
    await attempt('a1 closes its account (releases "ada")', () => closeAccount(store, 'a1'))
    await attempt('a2 changes to "ada"', () => changeUsername(store, 'a2', 'ada'))
    await attempt('a3 registers "bob" (released by a2)', () => registerAccount(store, 'a3', 'bob'))
    console.log('  5 new accounts race for "eve":')
    const racers = ['r1', 'r2', 'r3', 'r4', 'r5']
    const outcomes = await Promise.allSettled(racers.map((id) => registerAccount(store, id, 'eve')))
    console.log(`  "eve" went to ${racers.filter((_, i) => outcomes[i]!.status === 'fulfilled').join(', ')}`)
  })
}
