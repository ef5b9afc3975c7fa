/**
 * A child process that speaks JSON lines on stdout, for the tests whose guarantees only real
 * processes can show (SIGKILL mid-write, several writers on one database).
 */
import type { Subprocess } from 'bun'

/** One line the child printed: a JSON object with a `kind`. */
export type ChildLine = Record<string, unknown> & { kind: string }

/** Runs `bun <script> ...args` and collects its stdout lines as they arrive. */
export class JsonLinesChild {
  readonly lines: ChildLine[] = []
  readonly process: Subprocess<'pipe', 'pipe', 'inherit'>
  /** Settles once stdout has ended (the child exited or closed it). */
  readonly finished: Promise<void>
  #wake: () => void = () => {}

  constructor(script: string, args: readonly string[]) {
    this.process = Bun.spawn([process.execPath, script, ...args], { stdin: 'pipe', stdout: 'pipe', stderr: 'inherit' })
    this.finished = this.#collect()
  }

  async #collect(): Promise<void> {
    let buffered = ''
    const decoder = new TextDecoder()
    const reader = this.process.stdout.getReader()
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      buffered += decoder.decode(value, { stream: true })
      let newline: number
      while ((newline = buffered.indexOf('\n')) >= 0) {
        this.lines.push(JSON.parse(buffered.slice(0, newline)))
        buffered = buffered.slice(newline + 1)
      }
      this.#wake()
    }
    this.#wake()
  }

  /** Resolves once `predicate` holds for the lines seen so far; rejects if the child ends first. */
  async waitFor(predicate: (lines: readonly ChildLine[]) => boolean, what = 'the expected output'): Promise<void> {
    for (;;) {
      if (predicate(this.lines)) return
      if (this.process.exitCode !== null || this.process.signalCode !== null) {
        await this.finished
        if (predicate(this.lines)) return
        throw new Error(`child exited (${this.process.exitCode ?? this.process.signalCode}) before ${what}`)
      }
      await new Promise<void>((resolve) => {
        this.#wake = resolve
        // exited also settles when the child dies without a final chunk.
        void this.process.exited.then(() => resolve())
      })
    }
  }

  /** The first line of this kind, once it arrives; rejects if the child exits first. */
  async line(kind: string): Promise<ChildLine> {
    await this.waitFor((lines) => lines.some((line) => line.kind === kind), `printing ${kind}`)
    return this.lines.find((line) => line.kind === kind)!
  }

  /** Writes one line to the child's stdin. */
  send(line: string): void {
    this.process.stdin.write(`${line}\n`)
    void this.process.stdin.flush()
  }

  async kill(): Promise<void> {
    this.process.kill('SIGKILL')
    await this.process.exited
  }
}
