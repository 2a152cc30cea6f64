/** One key of a rule: tests one part of a session, and prints itself as `key: [items]`. */
export interface Matcher<Subject> {
  readonly text: string;
  matches(subject: Subject): boolean;
}
