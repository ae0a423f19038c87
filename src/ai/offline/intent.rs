//! Reading a user message: split it into words, trim polite filler, take out the date and time
//! phrases ([`when`]) and the priority and project tags, then let the first rule of [`RULES`]
//! whose pattern fits decide the tool call. Messages no rule fits are treated by what is left:
//! a question about a day lists the calendar, another question searches memory, a statement
//! with a date becomes an event (with a time of day, a length, a repetition or an event word
//! such as "meeting") or a task; anything else gets the help text.

use std::ops::Range;
use std::str::Split;

use chrono::{Duration, NaiveDate, NaiveTime};
use serde_json::{Map, Value, json};

use super::Now;
use super::when::{self, When};

/// What to do with a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Tool calls to make: name and arguments.
    Calls(Vec<(&'static str, Value)>),
    /// A direct answer, no tool needed.
    Say(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    Remember,
    Search,
    ListTasks,
    ListEvents,
    Complete,
    DeleteTask,
    DeleteEvent,
    /// Delete whatever the words name: an event when they start with an event word.
    DeleteAny,
    Reschedule,
    AddTask,
    AddEvent,
    /// "add X": an event when X looks like one, else a task.
    Add,
    /// A statement with a date ("I have a meeting tomorrow at 3"): an event when timed or
    /// eventful, else a task.
    Plan,
    /// "remind me to X at 5pm": a reminder when a time is given, else a task.
    Remind,
    /// "remind me about the dentist 30 minutes before": a reminder ahead of an event or task.
    RemindBefore,
    /// "snooze that for 10 minutes", "snooze the laundry reminder until 6".
    Snooze,
    ListReminders,
    CancelReminder,
}

enum Rule {
    /// A pattern (see [`fits`]) and what its slot is for.
    Pat(&'static str, Act),
    /// A question or command that names tasks or the calendar ("show my tasks").
    Ask,
}

use Act::*;
use Rule::{Ask, Pat};

/// The rules, most specific first. Memory rules come first because their slot keeps the date
/// words ("remember that her birthday is 3 May"); listings come before completing because
/// "completed tasks" is a listing.
const RULES: &[Rule] = &[
    Pat(
        "what|which|show|list|see|view|any my|the|all? reminders do|have|are? i|there? have|got|set?",
        ListReminders,
    ),
    Pat("my|all? reminders", ListReminders),
    Pat(
        "cancel|delete|remove|drop|stop|clear the|my? reminder|reminders about|for|to|of *",
        CancelReminder,
    ),
    Pat(
        "cancel|delete|remove|drop|stop|clear the|my? * reminder",
        CancelReminder,
    ),
    Pat("snooze|postpone that|it|this|the_reminder?", Snooze),
    Pat("snooze the? * reminder?", Snooze),
    Pat("remind_me about|of * before|beforehand|ahead", RemindBefore),
    Pat("remind_me to *", Remind),
    Pat("remember to *", AddTask),
    Pat("do you remember|recall *", Search),
    Pat("what do|did you know|remember about *", Search),
    Pat("what did i tell|say to? you? about *", Search),
    Pat("remember that? *", Remember),
    Pat("note|fyi|memo that? *", Remember),
    Pat(
        "make|take|save|add|write a? note|memo that|of|about? *",
        Remember,
    ),
    Pat("don't|dont|do_not forget that *", Remember),
    Pat(
        "keep_in_mind|bear_in_mind|note_down|jot_down|write_down that? *",
        Remember,
    ),
    Pat("for the record *", Remember),
    Pat("recall *", Search),
    Pat(
        "search|look|check in|through? my|the? notes|memory|memories for|about? *",
        Search,
    ),
    Pat("search|look for *", Search),
    Pat("search|find|look_up *", Search),
    Pat("tell me about *", Search),
    Ask,
    Pat(
        "what do|should|must|can i have_to|need_to|got_to|gotta? do|finish",
        ListTasks,
    ),
    Pat(
        "what's|whats|what_is|what_else_is|anything|is_anything due|left|pending|overdue|outstanding|left_to_do",
        ListTasks,
    ),
    Pat(
        "what have i done|completed|finished|accomplished",
        ListTasks,
    ),
    Pat(
        "what do|have i have|got on|planned|scheduled|coming_up?",
        ListEvents,
    ),
    Pat(
        "what's|whats|what_is|what_about|what_else_is|anything|is_there_anything on|up|next|planned|scheduled|happening|coming_up|upcoming|ahead?",
        ListEvents,
    ),
    Pat("am i free|busy|available", ListEvents),
    Pat(
        "do i have anything|something|plans on|planned|scheduled?",
        ListEvents,
    ),
    Pat(
        "what|how does|do my? day|week|weekend|schedule|calendar|agenda look|looks like?",
        ListEvents,
    ),
    Pat("mark|set * as? done|complete|completed|finished", Complete),
    Pat("check|tick|cross * off", Complete),
    Pat("check|tick|cross off *", Complete),
    Pat("i|we just? finished|completed|did *", Complete),
    Pat(
        "i've|ive|i_have|we've just? finished|completed|done *",
        Complete,
    ),
    Pat("i'm|im|i_am|we're done|finished with *", Complete),
    Pat("done|finished with *", Complete),
    Pat("complete|completed|finished *", Complete),
    Pat("* is|are done|finished|complete|completed", Complete),
    Pat(
        "delete|remove|cancel|drop|erase|clear|take * from|off my|the? calendar|schedule|agenda",
        DeleteEvent,
    ),
    Pat(
        "delete|remove|drop|erase|clear|scratch|take * from|off my|the? list|todo_list|to_do_list|todos|tasks|task_list|todolist",
        DeleteTask,
    ),
    Pat(
        "delete|remove|cancel|drop|erase the|my? event *",
        DeleteEvent,
    ),
    Pat("delete|remove|drop|erase the|my? task|todo *", DeleteTask),
    Pat("cancel|call_off *", DeleteEvent),
    Pat("delete|remove|drop|erase *", DeleteAny),
    Pat(
        "move|reschedule|postpone|push|delay * to|until|till?",
        Reschedule,
    ),
    Pat(
        "add|put * to|on|in|into my|the? calendar|schedule|agenda",
        AddEvent,
    ),
    Pat(
        "schedule|book|plan|arrange|organise|organize|set_up a|an? *",
        AddEvent,
    ),
    Pat(
        "add|create|make|new a|an? new? event called|named|titled|for? *",
        AddEvent,
    ),
    Pat(
        "add|create|make|new|set a|an? new? task|todo|reminder|item to|that|called|named|titled|for|about? *",
        AddTask,
    ),
    Pat(
        "add|put|write|jot * on|to|in|into my|the? list|todo_list|to_do_list|todos|tasks|task_list|todolist|todo",
        AddTask,
    ),
    Pat("remind me that|about|of? *", Remind),
    Pat("todo|to_do|task|reminder|new_task *", AddTask),
    Pat("i|we need_to|have_to|must|should|gotta|got_to *", AddTask),
    Pat("i've|ive|we've got_to *", AddTask),
    Pat("i|we have|have_got|got a|an *", Plan),
    Pat("i've|ive|we've got a|an *", Plan),
    Pat("don't|dont|do_not let me forget to|about? *", AddTask),
    Pat("don't|dont|do_not forget to|about? *", AddTask),
    Pat("add|create|make|new a|an? new? task|todo|reminder", AddTask),
    Pat(
        "add|create|make|new a|an? new? event|appointment|meeting",
        AddEvent,
    ),
    Pat("add|create|make|new a|an|the? new? *", Add),
];

/// Does `words` fit `pattern`? Elements are separated by spaces; each is a `|`-list of
/// alternatives (`_` joins the words of one alternative), optional with a trailing `?`; `*` is
/// the slot, one or more words. The whole message must fit. Returns the slot (empty at the
/// end when the pattern has none).
fn fits(pattern: &str, words: &[&str]) -> Option<Range<usize>> {
    // Walks the pattern's elements as they are split, without collecting them: the rules run
    // on every message, and a vector per element tried would be most of their cost.
    fn go(
        mut elements: Split<'_, char>,
        words: &[&str],
        at: usize,
        slot: &mut Range<usize>,
    ) -> bool {
        let Some(first) = elements.next() else {
            return at == words.len();
        };
        if first == "*" {
            let found = (at + 1..=words.len()).find(|&end| go(elements.clone(), words, end, slot));
            if let Some(end) = found {
                *slot = at..end;
            }
            return found.is_some();
        }
        let (alternatives, optional) = match first.strip_suffix('?') {
            Some(alternatives) => (alternatives, true),
            None => (first, false),
        };
        let hit = alternatives.split('|').any(|alternative| {
            spelled_at(alternative, words, at)
                .is_some_and(|n| go(elements.clone(), words, at + n, slot))
        });
        hit || (optional && go(elements, words, at, slot))
    }
    let mut slot = words.len()..words.len();
    go(pattern.split(' '), words, 0, &mut slot).then_some(slot)
}

/// How many words `phrase` (its words joined by `_`) spells at `words[at..]`, if it does.
fn spelled_at(phrase: &str, words: &[&str], at: usize) -> Option<usize> {
    let mut n = 0;
    for part in phrase.split('_') {
        if words.get(at + n) != Some(&part) {
            return None;
        }
        n += 1;
    }
    Some(n)
}

const TASK_NOUNS: &str = "task tasks todo todos todolist list reminders chores errands";
const EVENT_NOUNS: &str = "calendar schedule agenda diary event events appointment appointments meeting \
    meetings plans busy free";
/// Words that open a question or a "show me" command.
const ASK_LEADS: &str = "what what's whats which show list display view see give get tell any do does are is \
    how when when's whens read pull bring lemme let's";
/// Words a bare listing may be made of ("completed tasks", "my schedule"); not singular event
/// nouns ("meeting tomorrow" is a new event).
const LIST_WORDS: &str = "my the all of upcoming next open pending completed done finished remaining \
    outstanding current cancelled canceled overdue tasks todos todo list calendar \
    schedule agenda events appointments meetings plans reminders";

fn ask(words: &[&str]) -> Option<Act> {
    let lead = listed(ASK_LEADS, words.first()?);
    let bare = words.iter().all(|w| listed(LIST_WORDS, w));
    if !lead && !bare {
        return None;
    }
    words[usize::from(lead)..].iter().find_map(|w| {
        if listed(TASK_NOUNS, w) {
            Some(ListTasks)
        } else {
            listed(EVENT_NOUNS, w).then_some(ListEvents)
        }
    })
}

/// Words that start a question (the message need not end with "?").
const QUESTION_WORDS: &str = "what what's whats when when's where where's who who's whom whose which why how is \
    are was were do does did am have has";
/// Dropped from the start of a question to make a memory search query.
const QUERY_LEAD: &str = "what what's whats when when's where where's who who's whom which why how is are was \
    were do does did you know tell me about";
/// Words that make a title an event ("meeting with Sam", "dentist appointment").
const EVENT_WORDS: &str = "meeting appointment appt lunch dinner breakfast brunch coffee drinks standup \
    stand-up interview party class lesson session flight concert webinar conference \
    dentist doctor doctor's gym yoga workout sync 1:1 demo wedding rehearsal practice \
    haircut checkup check-up call";
/// Leading words that are politeness, not meaning.
const LEADING_FILLER: &str = "please pls plz kindly hey hi hello ok okay so pixie oh um uh also and now just then \
    yes can_you could_you would_you will_you can_u could_u i_want_you_to i'd_like_you_to \
    i_would_like_you_to go_ahead_and";
const TRAILING_FILLER: &str = "please pls plz thanks thank_you thx for_me pixie";
/// Priority words, with the priority they set.
const PRIORITIES: &[(&str, &str)] = &[
    ("urgent", "urgent"),
    ("urgently", "urgent"),
    ("asap", "urgent"),
    ("high_priority", "high"),
    ("high-priority", "high"),
    ("priority_high", "high"),
    ("important", "high"),
    ("medium_priority", "medium"),
    ("normal_priority", "medium"),
    ("low_priority", "low"),
    ("low-priority", "low"),
    ("priority_low", "low"),
];

/// A word as the rules see it: lower case, curly quotes straightened, surrounding punctuation
/// trimmed ("Friday," → "friday", "todo:" → "todo"); "@" reads "at", "to-do" "todo". Empty for emoji and
/// punctuation, which the rules skip (titles keep them).
fn normalise(raw: &str) -> String {
    let straight = raw.replace(['’', '‘'], "'");
    match straight.as_str() {
        "@" => "at".into(),
        "&" => "and".into(),
        "-" | "–" | "—" => "-".into(),
        _ => match straight
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase()
        {
            word if word == "to-do" => "todo".into(),
            word if word == "to-dos" => "todos".into(),
            word => word,
        },
    }
}

/// Is `word` one of the space-separated words of `list`?
fn listed(list: &str, word: &str) -> bool {
    list.split(' ').any(|w| w == word)
}

/// The length of the word sequence at `words[at..]` that one of `phrases` spells, if any
/// (phrases separated by spaces, the words of a phrase by `_`).
fn phrase_at(phrases: &str, words: &[&str], at: usize) -> Option<usize> {
    phrases
        .split(' ')
        .find_map(|phrase| spelled_at(phrase, words, at))
}

/// A message taken apart.
struct Message<'a> {
    raw: Vec<&'a str>,
    norm: Vec<String>,
    /// The tokens of the message proper: polite filler trimmed from both ends.
    body: Range<usize>,
    /// Tokens taken by a date or time phrase.
    dated: Vec<bool>,
    /// Tokens taken by a priority or project tag.
    tagged: Vec<bool>,
    /// Tokens left for the rules.
    kept: Vec<usize>,
    when: When,
    priority: Option<&'static str>,
    project: Option<String>,
    question: bool,
}

/// What a title keeps of its words.
#[derive(Clone, Copy, PartialEq)]
enum Keep {
    /// Everything the user wrote (memories, search queries).
    All,
    /// All but date phrases (names of existing tasks and events).
    Undated,
    /// All but date phrases and tags (titles of new tasks and events).
    Title,
}

impl<'a> Message<'a> {
    fn read(text: &'a str, now: &Now) -> Self {
        let raw: Vec<&str> = text.split_whitespace().collect();
        let norm: Vec<String> = raw.iter().map(|w| normalise(w)).collect();
        let mut words: Vec<usize> = (0..raw.len()).filter(|&i| !norm[i].is_empty()).collect();
        trim_filler(&mut words, &norm);
        let body = match (words.first(), words.last()) {
            (Some(&first), Some(&last)) => first..last + 1,
            _ => 0..0,
        };
        let texts: Vec<&str> = words.iter().map(|&i| norm[i].as_str()).collect();
        let (when, used) = when::extract(&texts, now.local);
        let mut dated = vec![false; raw.len()];
        for (&i, used) in words.iter().zip(used) {
            dated[i] = used;
        }
        let question = text.trim_end().ends_with('?')
            || words
                .first()
                .is_some_and(|&i| listed(QUESTION_WORDS, &norm[i]));
        let mut kept: Vec<usize> = words.into_iter().filter(|&i| !dated[i]).collect();
        let (priority, project, taken) = tags(&raw, &norm, &kept);
        let mut tagged = vec![false; raw.len()];
        for token in taken {
            tagged[token] = true;
        }
        kept.retain(|&token| !tagged[token]);
        Self {
            raw,
            norm,
            body,
            dated,
            tagged,
            kept,
            when,
            priority,
            project,
            question,
        }
    }

    /// The normalised words left for the rules.
    fn words(&self) -> Vec<&str> {
        self.kept.iter().map(|&i| self.norm[i].as_str()).collect()
    }

    /// The tokens a slot (a range of kept words) covers, including the date words inside it
    /// and, at the edges, those up to the pattern's neighbouring words.
    fn tokens(&self, slot: &Range<usize>) -> Range<usize> {
        let start = match slot.start {
            0 => self.body.start,
            k => self.kept[k - 1] + 1,
        };
        let end = self.kept.get(slot.end).copied().unwrap_or(self.body.end);
        start..end.max(start)
    }

    /// The user's words in `tokens`, as typed.
    fn text(&self, tokens: Range<usize>, keep: Keep) -> String {
        let shown = |&i: &usize| match keep {
            Keep::All => true,
            Keep::Undated => !self.dated[i],
            Keep::Title => !self.dated[i] && !self.tagged[i],
        };
        let words: Vec<&str> = tokens.filter(shown).map(|i| self.raw[i]).collect();
        words.join(" ")
    }

    fn understand(&self, now: &Now) -> Outcome {
        let words = self.words();
        if words.is_empty() {
            // Only a date ("tomorrow?"): show that day.
            return if self.when.is_empty() {
                Outcome::Say(HELP.into())
            } else {
                self.list_events(now)
            };
        }
        for rule in RULES {
            let hit = match rule {
                Pat(pattern, act) => fits(pattern, &words).map(|slot| (*act, slot)),
                Ask => ask(&words).map(|act| (act, 0..words.len())),
            };
            if let Some((act, slot)) = hit {
                return self.act(act, self.tokens(&slot), now);
            }
        }
        let all = self.body.clone();
        if self.question {
            if !self.when.is_empty() {
                return self.list_events(now);
            }
            // "when is my sister's birthday" looks for "my sister's birthday"; a question made
            // only of question words looks for all of it.
            let lead = words.iter().take_while(|w| listed(QUERY_LEAD, w)).count();
            let start = self.kept.get(lead).map_or(all.start, |&token| token);
            return self.act(Search, start..all.end, now);
        }
        if self.states_a_fact(&words) {
            return self.act(Remember, all, now);
        }
        self.act(Plan, all, now)
    }

    /// "my favourite colour is green", "I'm allergic to peanuts", "my sister's birthday is
    /// March 3": a statement about the user, remembered as "remember that …" is. Not when it
    /// names a time of day or a repetition: that is an appointment.
    fn states_a_fact(&self, words: &[&str]) -> bool {
        const ABOUT_MY: &[&str] = &[
            "is", "are", "was", "were", "has", "have", "had", "lives", "live", "works", "likes",
            "loves", "hates", "prefers", "needs", "takes", "goes", "plays", "drives", "owns",
            "wears", "uses", "speaks", "studies", "can't", "cannot", "doesn't", "don't", "won't",
        ];
        const I_VERBS: &[&str] = &[
            "am",
            "was",
            "like",
            "love",
            "hate",
            "prefer",
            "live",
            "work",
            "own",
            "drive",
            "speak",
            "study",
            "play",
            "can't",
            "cannot",
            "don't",
            "never",
            "always",
            "usually",
            "hardly",
            "used",
            "grew",
            "moved",
            "graduated",
            "was_born",
        ];
        if self.when.is_timed() || self.when.repeat.is_some() {
            return false;
        }
        match words {
            ["my", rest @ ..] => rest.iter().skip(1).any(|w| ABOUT_MY.contains(w)),
            ["i'm" | "im", _, ..] => true,
            ["i", verb, _, ..] => I_VERBS.contains(verb),
            _ => false,
        }
    }

    fn act(&self, act: Act, tokens: Range<usize>, now: &Now) -> Outcome {
        let call = |name, args| Outcome::Calls(vec![(name, args)]);
        let name = || match_title(&self.text(tokens.clone(), Keep::Undated));
        match act {
            Remember => match tidy_content(&self.text(tokens, Keep::All)) {
                content if content.is_empty() => Outcome::Say(
                    "What should I remember? For example: “remember that Sam likes green tea”."
                        .into(),
                ),
                content => call("remember", json!({ "content": content })),
            },
            Search => match tidy_content(&self.text(tokens, Keep::All)) {
                query if query.is_empty() => Outcome::Say(
                    "What should I look for? For example: “what do you know about Sam”.".into(),
                ),
                query => call("search_memory", json!({ "query": query })),
            },
            ListTasks => call("list_tasks", self.list_tasks_args(now)),
            ListEvents => self.list_events(now),
            Complete | DeleteTask | DeleteEvent | DeleteAny => {
                let title = name();
                if title.is_empty() {
                    return Outcome::Say(
                        "Which one? Say its title, e.g. “mark buy milk as done”.".into(),
                    );
                }
                let tool = match act {
                    Complete => "complete_task",
                    DeleteEvent => "delete_event",
                    DeleteAny if looks_like_event(&title) => "delete_event",
                    _ => "delete_task",
                };
                call(tool, json!({ "title": title }))
            }
            Reschedule => match (name(), self.due_at(now)) {
                (title, _) if title.is_empty() => Outcome::Say("Which task should I move?".into()),
                (title, None) => Outcome::Say(format!(
                    "When should I move “{title}” to? For example: “move {title} to Friday”."
                )),
                (title, Some(due)) => call("update_task", json!({ "title": title, "due_at": due })),
            },
            ListReminders => call("list_reminders", json!({})),
            CancelReminder => match name() {
                text if text.is_empty() => {
                    Outcome::Say("Which reminder? Say what it is about.".into())
                }
                text => call("cancel_reminder", json!({ "text": text })),
            },
            Snooze => {
                let mut args = Map::new();
                match (self.when.minutes, self.due_at(now)) {
                    (Some(minutes), _) => {
                        args.insert("minutes".into(), minutes.into());
                    }
                    (None, Some(until)) => {
                        args.insert("until".into(), until.into());
                    }
                    (None, None) => {
                        return Outcome::Say(
                            "Until when? For example: “snooze that for 10 minutes”.".into(),
                        );
                    }
                }
                let text = name();
                if !text.is_empty() {
                    args.insert("text".into(), text.into());
                }
                call("snooze_reminder", Value::Object(args))
            }
            RemindBefore => self.remind_before(tokens),
            Remind => {
                let title = capitalise(&tidy(&self.text(tokens, Keep::Title)));
                match (title.is_empty(), self.due_at(now)) {
                    (true, _) => Outcome::Say(
                        "What should I remind you of? For example: “remind me to call mom at 5pm”."
                            .into(),
                    ),
                    (false, Some(due)) => {
                        call("create_reminder", json!({ "text": title, "due_at": due }))
                    }
                    // No time: a task to do, as "remember to" makes.
                    (false, None) => call("create_task", self.create_task_args(title, now)),
                }
            }
            Plan if self.when.is_empty() => Outcome::Say(unknown()),
            AddTask | AddEvent | Add | Plan => {
                let title = capitalise(&tidy(&self.text(tokens, Keep::Title)));
                let when = &self.when;
                let eventful = when.repeat.is_some() || when.all_day || looks_like_event(&title);
                let event = match act {
                    AddTask => false,
                    AddEvent => true,
                    // "add call mom at 5pm" is a task with a due time.
                    Add => eventful || when.minutes.is_some(),
                    _ => eventful || when.is_timed(),
                };
                match (title.is_empty(), event) {
                    (true, true) => Outcome::Say(
                        "What is the event? For example: “lunch with Ana next Tuesday at noon”."
                            .into(),
                    ),
                    (true, false) => Outcome::Say(
                        "What is the task? For example: “add a task to buy milk tomorrow”.".into(),
                    ),
                    (false, true) => self.create_event(title, now),
                    (false, false) => call("create_task", self.create_task_args(title, now)),
                }
            }
        }
    }

    /// "remind me about the dentist 30 minutes before": the item named and how long before it
    /// (the slot's last words, "30 minutes", "an hour"; none: at its time).
    fn remind_before(&self, tokens: Range<usize>) -> Outcome {
        let shown: Vec<usize> = tokens
            .filter(|&i| !self.dated[i] && !self.norm[i].is_empty())
            .collect();
        let (minutes, named) = match shown.as_slice() {
            [rest @ .., n, u] => match when::amount_minutes(&self.norm[*n], &self.norm[*u]) {
                Some(minutes) => (minutes, rest),
                None => (0, shown.as_slice()),
            },
            _ => (0, shown.as_slice()),
        };
        let name: Vec<&str> = named.iter().map(|&i| self.raw[i]).collect();
        match match_title(&name.join(" ")) {
            title if title.is_empty() => Outcome::Say(
                "Remind you before what? For example: “remind me about the dentist 30 minutes before”."
                    .into(),
            ),
            title => Outcome::Calls(vec![(
                "create_reminder",
                json!({ "event": title, "minutes_before": minutes }),
            )]),
        }
    }

    /// A task's due time: the time given, else 09:00 that day (or 23:59 when 09:00 has passed
    /// today), so that a due date always sorts and reminds within its day.
    fn due_at(&self, now: &Now) -> Option<String> {
        let (day, time) = self.when.anchor(now.local)?;
        let nine = NaiveTime::from_hms_opt(9, 0, 0)?;
        let time = time.unwrap_or(if day.and_time(nine) > now.local {
            nine
        } else {
            NaiveTime::from_hms_opt(23, 59, 0)?
        });
        Some(now.stamp(day.and_time(time)))
    }

    fn create_task_args(&self, title: String, now: &Now) -> Value {
        let mut args = Map::new();
        args.insert("title".into(), title.into());
        if let Some(due) = self.due_at(now) {
            args.insert("due_at".into(), due.into());
        }
        if let Some(priority) = self.priority {
            args.insert("priority".into(), priority.into());
        }
        if let Some(project) = &self.project {
            args.insert("project".into(), project.as_str().into());
        }
        Value::Object(args)
    }

    fn create_event(&self, title: String, now: &Now) -> Outcome {
        let (title, location) = split_location(&title);
        let Some((day, time)) = self.when.anchor(now.local) else {
            return Outcome::Say(format!(
                "When is “{title}”? For example: “{title} tomorrow at 3pm”."
            ));
        };
        let mut args = Map::new();
        args.insert("title".into(), title.into());
        match time.filter(|_| !self.when.all_day) {
            Some(time) => {
                let start = day.and_time(time);
                let end = match (self.when.times().1, self.when.minutes) {
                    (Some(end), _) if day.and_time(end) > start => day.and_time(end),
                    (Some(end), _) => day.and_time(end) + Duration::days(1),
                    (None, Some(minutes)) => start + Duration::minutes(minutes),
                    (None, None) => start + Duration::minutes(60),
                };
                args.insert("start_at".into(), now.stamp(start).into());
                args.insert("end_at".into(), now.stamp(end).into());
            }
            None => {
                let midnight = |day: NaiveDate| now.stamp(day.and_time(NaiveTime::MIN));
                args.insert("start_at".into(), midnight(day).into());
                args.insert("end_at".into(), midnight(day + Duration::days(1)).into());
                args.insert("is_all_day".into(), true.into());
            }
        }
        if let Some(location) = location {
            args.insert("location".into(), location.into());
        }
        if let Some(repeat) = &self.when.repeat {
            args.insert("recurrence".into(), repeat.rrule().into());
        }
        Outcome::Calls(vec![("create_event", Value::Object(args))])
    }

    fn list_tasks_args(&self, now: &Now) -> Value {
        let words = self.words();
        // The first status word decides; "all" means any status; none means the open tasks.
        let status = words
            .iter()
            .enumerate()
            .find_map(|(k, word)| match *word {
                "completed" | "done" | "finished" | "accomplished" => Some(Some("completed")),
                "cancelled" | "canceled" => Some(Some("cancelled")),
                "in-progress" | "started" | "ongoing" => Some(Some("in_progress")),
                "progress" if k > 0 && words[k - 1] == "in" => Some(Some("in_progress")),
                "all" | "every" => Some(None),
                _ => None,
            })
            .unwrap_or(Some("pending"));
        let mut args = Map::new();
        if let Some(status) = status {
            args.insert("status".into(), status.into());
        }
        if let Some(project) = &self.project {
            args.insert("project".into(), project.as_str().into());
        }
        let due_before = match self.when.range(now.local) {
            _ if status == Some("completed") => None,
            Some((_, to)) => Some(to),
            None => words.contains(&"overdue").then_some(now.local),
        };
        if let Some(to) = due_before {
            args.insert("due_before".into(), now.stamp(to).into());
        }
        Value::Object(args)
    }

    /// The calendar over the days named, or the next 7 days.
    fn list_events(&self, now: &Now) -> Outcome {
        let (from, to) = self
            .when
            .range(now.local)
            .unwrap_or((now.local, now.local + Duration::days(7)));
        Outcome::Calls(vec![(
            "list_events",
            json!({ "from": now.stamp(from), "to": now.stamp(to) }),
        )])
    }
}

fn trim_filler(words: &mut Vec<usize>, norm: &[String]) {
    loop {
        let texts: Vec<&str> = words.iter().map(|&i| norm[i].as_str()).collect();
        if let Some(len) = phrase_at(LEADING_FILLER, &texts, 0) {
            words.drain(..len);
            continue;
        }
        let ends = (1..=texts.len().min(2))
            .find(|&n| phrase_at(TRAILING_FILLER, &texts, texts.len() - n) == Some(n));
        match ends {
            Some(n) => words.truncate(words.len() - n),
            None => return,
        }
    }
}

/// The first priority phrase ("urgent", "with high priority") and project tag ("#work", "for
/// project Apollo") among the `kept` tokens, and the tokens they take.
fn tags(
    raw: &[&str],
    norm: &[String],
    kept: &[usize],
) -> (Option<&'static str>, Option<String>, Vec<usize>) {
    let words: Vec<&str> = kept.iter().map(|&i| norm[i].as_str()).collect();
    let (mut priority, mut project, mut taken) = (None, None, Vec::new());
    for (k, &token) in kept.iter().enumerate() {
        if priority.is_none()
            && let Some(&(phrase, level)) = PRIORITIES
                .iter()
                .find(|(p, _)| phrase_at(p, &words, k).is_some())
        {
            let lead = usize::from(k > 0 && matches!(words[k - 1], "with" | "as" | "it's" | "its"));
            taken.extend(kept[k - lead..k + phrase.split('_').count()].iter());
            priority = Some(level);
        }
        if project.is_none() && raw[token].starts_with('#') {
            project = Some(norm[token].clone()).filter(|p| !p.is_empty());
            taken.push(token);
        } else if project.is_none()
            && matches!(words[k], "for" | "in" | "under" | "to")
            && let Some(len) = phrase_at("project the_project", &words, k + 1)
            && let Some(&name) = kept.get(k + 1 + len)
        {
            project = Some(
                raw[name]
                    .trim_matches(|c: char| !c.is_alphanumeric())
                    .to_string(),
            );
            taken.extend(kept[k..k + 2 + len].iter());
        }
    }
    (priority, project, taken)
}

/// Recognises greetings, thanks and requests for help (the whole message, filler aside).
pub(super) fn small_talk(text: &str) -> Option<&'static str> {
    let words: Vec<String> = text
        .split_whitespace()
        .map(normalise)
        .filter(|w| !w.is_empty() && w != "pixie")
        .collect();
    Some(match words.join(" ").as_str() {
        "" => HELP,
        "hi" | "hello" | "hey" | "hiya" | "howdy" | "yo" | "hi there" | "hello there"
        | "hey there" | "good morning" | "good afternoon" | "good evening" | "what's up"
        | "whats up" | "sup" => GREETING,
        "thanks"
        | "thank you"
        | "thx"
        | "ty"
        | "cheers"
        | "thanks a lot"
        | "thank you very much"
        | "great thanks"
        | "perfect thanks"
        | "great"
        | "perfect"
        | "awesome"
        | "cool"
        | "ok"
        | "okay"
        | "nice" => THANKS,
        "bye" | "goodbye" | "good night" | "see you" | "see ya" => {
            "Bye! I'm here whenever you need me."
        }
        "help" | "help me" | "what can you do" | "what can i ask" | "what can i ask you"
        | "what do you do" | "how does this work" | "who are you" | "what are you" | "commands"
        | "options" => HELP,
        _ => return None,
    })
}

pub(super) const GREETING: &str = "Hi! I can keep your tasks, your calendar and the things you want me to remember. Try “remind me to call mom tomorrow at 5pm” or “what’s on my calendar this week?”.";
const THANKS: &str = "You're welcome!";
pub(super) const HELP: &str = "I'm running offline, so I understand a fixed set of requests. I can:\n\
- add tasks: “remind me to call mom next Friday at 5pm”, “todo: file taxes in 3 days”, “add buy milk to my list”\n\
- list, complete and delete tasks: “what are my tasks”, “mark buy milk as done”, “delete the task buy milk”\n\
- schedule events: “lunch with Ana next Tuesday at noon for 90 minutes”, “team standup every Monday at 9am”\n\
- show your calendar: “what’s on my calendar tomorrow”, “events this week”\n\
- remember things: “remember that Sam likes green tea”, and recall them: “what do you know about Sam”";

/// The answer to a message no rule understood.
fn unknown() -> String {
    format!("Sorry, I didn't understand that. {HELP}")
}

/// Reads a user message and decides the tool call or the direct answer.
pub fn understand(text: &str, now: &Now) -> Outcome {
    if let Some(reply) = small_talk(text) {
        return Outcome::Say(reply.into());
    }
    Message::read(text, now).understand(now)
}

/// Connector words left dangling at a title's edges once date phrases are gone.
const EDGE_WORDS: &str = "to on at by for and due with in that from - until till before around";

/// Trims dangling connectors, punctuation and quotes from the edges of a title.
fn tidy(text: &str) -> String {
    let mut words: Vec<&str> = text.split_whitespace().collect();
    // Punctuation alone or a connector; emoji stay.
    let dangling = |w: &&str| {
        w.chars()
            .all(|c| c.is_ascii_punctuation() || "–—“”‘’".contains(c))
            || listed(EDGE_WORDS, &normalise(w))
    };
    while words.first().is_some_and(dangling) {
        words.remove(0);
    }
    while words.last().is_some_and(dangling) {
        words.pop();
    }
    trim_punctuation(&words.join(" "))
}

fn trim_punctuation(text: &str) -> String {
    text.trim_matches(|c: char| c.is_whitespace() || ",.;:!?-–—\"“”'‘’()".contains(c))
        .to_string()
}

/// A memory or a query: everything the user wrote, minus a leading "that" and end punctuation.
fn tidy_content(text: &str) -> String {
    let text = trim_punctuation(text);
    match text
        .get(..5)
        .filter(|lead| lead.eq_ignore_ascii_case("that "))
    {
        Some(_) => trim_punctuation(&text[5..]),
        None => text,
    }
}

/// The words naming an existing task or event: articles and "task"/"event" dropped.
fn match_title(text: &str) -> String {
    const LEADING: &[&str] = &[
        "the", "my", "a", "an", "this", "that", "task", "todo", "item", "event", "called", "named",
        "titled", "to", "about",
    ];
    const TRAILING: &[&str] = &[
        "task", "todo", "item", "event", "from", "off", "as", "please",
    ];
    let tidied = tidy(text);
    let mut words: Vec<&str> = tidied.split_whitespace().collect();
    while words
        .first()
        .is_some_and(|w| LEADING.contains(&normalise(w).as_str()))
    {
        words.remove(0);
    }
    while words
        .last()
        .is_some_and(|w| TRAILING.contains(&normalise(w).as_str()))
    {
        words.pop();
    }
    let title = tidy(&words.join(" "));
    // A pronoun names nothing without a conversation to look back at.
    if matches!(
        normalise(&title).as_str(),
        "it" | "that" | "this" | "them" | "those"
    ) {
        String::new()
    } else {
        title
    }
}

fn looks_like_event(title: &str) -> bool {
    let words: Vec<String> = title.split_whitespace().take(2).map(normalise).collect();
    match words.as_slice() {
        [first, ..] if listed(EVENT_WORDS, first) && first != "call" => true,
        [_, second] => listed(EVENT_WORDS, second),
        _ => false,
    }
}

/// "Lunch at Luigi's" → ("Lunch", Some("Luigi's")): the words after the last "at" or "@".
fn split_location(title: &str) -> (String, Option<String>) {
    let words: Vec<&str> = title.split_whitespace().collect();
    let at = words
        .iter()
        .rposition(|w| matches!(normalise(w).as_str(), "at"));
    match at {
        Some(at) if at > 0 && at + 1 < words.len() => {
            let place = trim_punctuation(&words[at + 1..].join(" "));
            let name = tidy(&words[..at].join(" "));
            if place.is_empty() || name.is_empty() {
                (title.to_string(), None)
            } else {
                (name, Some(place))
            }
        }
        _ => (title.to_string(), None),
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use chrono_tz::Tz;
    use chrono_tz::{America::New_York, Europe::Berlin, UTC};

    use super::*;

    /// Thursday 2026-11-26 10:00 UTC (11:00 in Berlin, 05:00 in New York).
    fn now(tz: Tz) -> Now {
        Now {
            tz,
            local: Utc
                .with_ymd_and_hms(2026, 11, 26, 10, 0, 0)
                .unwrap()
                .with_timezone(&tz)
                .naive_local(),
        }
    }

    /// Reminders set, snoozed, listed and cancelled.
    const REMINDERS: &str = r#"
remind me to call mom next Friday 5pm => create_reminder {"text": "Call mom", "due_at": "2026-11-27T17:00:00Z"}
Can you please remind me to call mom tomorrow at 5pm? Thanks => create_reminder {"text": "Call mom", "due_at": "2026-11-27T17:00:00Z"}
remind me to renew passport on Friday at 3pm => create_reminder {"text": "Renew passport", "due_at": "2026-11-27T15:00:00Z"}
remind me to stretch Monday 9am => create_reminder {"text": "Stretch", "due_at": "2026-11-30T09:00:00Z"}
remind me to pay rent on May 3 => create_reminder {"text": "Pay rent", "due_at": "2027-05-03T09:00:00Z"}
remind me to pay rent 3 May => create_reminder {"text": "Pay rent", "due_at": "2027-05-03T09:00:00Z"}
remind me to call mom 5pm tomorrow => create_reminder {"text": "Call mom", "due_at": "2026-11-27T17:00:00Z"}
remind me to water plants tonight at 9 => create_reminder {"text": "Water plants", "due_at": "2026-11-26T21:00:00Z"}
remind me in 30 minutes to take the pizza out => create_reminder {"text": "Take the pizza out", "due_at": "2026-11-26T10:30:00Z"}
remind me to call the bank today => create_reminder {"text": "Call the bank", "due_at": "2026-11-26T23:59:00Z"}
remind me to call the dentist on sun => create_reminder {"text": "Call the dentist", "due_at": "2026-11-29T09:00:00Z"}
remind me about the dentist 30 minutes before => create_reminder {"event": "dentist", "minutes_before": 30}
remind me of the standup an hour before => create_reminder {"event": "standup", "minutes_before": 60}
snooze that for 10 minutes => snooze_reminder {"minutes": 10}
snooze it until 5pm => snooze_reminder {"until": "2026-11-26T17:00:00Z"}
snooze the laundry reminder for 20 minutes => snooze_reminder {"minutes": 20, "text": "laundry"}
what reminders do I have => list_reminders {}
what reminders do I have? => list_reminders {}
show my reminders => list_reminders {}
cancel the reminder about the dentist => cancel_reminder {"text": "dentist"}
cancel my dentist reminder => cancel_reminder {"text": "dentist"}
"#;

    /// Tasks added, dates stripped from their titles.
    const TASKS: &str = r#"
add a task to buy milk tomorrow => create_task {"title": "Buy milk", "due_at": "2026-11-27T09:00:00Z"}
todo: file taxes in 3 days => create_task {"title": "File taxes", "due_at": "2026-11-29T09:00:00Z"}
add buy milk to my list => create_task {"title": "Buy milk"}
finish the report by Friday => create_task {"title": "Finish the report", "due_at": "2026-11-27T09:00:00Z"}
# The "5pm tomorrow" trap: interim alone reads it as today 17:00.
call mom tonight => create_task {"title": "Call mom", "due_at": "2026-11-26T20:00:00Z"}
# 09:00 has passed today: due at the end of the day instead.
I need to renew my passport next month => create_task {"title": "Renew my passport", "due_at": "2026-12-01T09:00:00Z"}
todo: buy eggs, bread and milk tomorrow => create_task {"title": "Buy eggs, bread and milk", "due_at": "2026-11-27T09:00:00Z"}
"#;

    /// Priority and project words leave the title.
    const TASK_TAGS: &str = r#"
add an urgent task to call the bank => create_task {"title": "Call the bank", "priority": "urgent"}
Please add a high priority task to finish the report by Friday => create_task {"title": "Finish the report", "due_at": "2026-11-27T09:00:00Z", "priority": "high"}
remind me to water the plants, low priority => create_task {"title": "Water the plants", "priority": "low"}
urgent: pay the electricity bill tomorrow => create_task {"title": "Pay the electricity bill", "due_at": "2026-11-27T09:00:00Z", "priority": "urgent"}
add "buy milk" to my list #home => create_task {"title": "Buy milk", "project": "home"}
add fix bug to my list for project Apollo => create_task {"title": "Fix bug", "project": "Apollo"}
"#;

    /// Listing, completing, deleting and moving tasks.
    const TASK_CHANGES: &str = r#"
what are my tasks => list_tasks {"status": "pending"}
show my todo list => list_tasks {"status": "pending"}
What do I have to do? => list_tasks {"status": "pending"}
list completed tasks => list_tasks {"status": "completed"}
list all tasks => list_tasks {}
what do I have to do today => list_tasks {"status": "pending", "due_before": "2026-11-27T00:00:00Z"}
what's due tomorrow? => list_tasks {"status": "pending", "due_before": "2026-11-28T00:00:00Z"}
which tasks are overdue => list_tasks {"status": "pending", "due_before": "2026-11-26T10:00:00Z"}
show my #work tasks => list_tasks {"status": "pending", "project": "work"}
mark buy milk as done => complete_task {"title": "buy milk"}
I finished the report => complete_task {"title": "report"}
complete call mom => complete_task {"title": "call mom"}
done with taxes => complete_task {"title": "taxes"}
check off laundry => complete_task {"title": "laundry"}
take out trash is done => complete_task {"title": "take out trash"}
delete the task buy milk => delete_task {"title": "buy milk"}
remove call mom from my list => delete_task {"title": "call mom"}
move buy milk to Friday => update_task {"title": "buy milk", "due_at": "2026-11-27T09:00:00Z"}
"#;

    /// Events with times, lengths, places and rules.
    const EVENTS: &str = r#"
meeting with Sam on Friday at 3pm for 1 hour => create_event {"title": "Meeting with Sam", "start_at": "2026-11-27T15:00:00Z", "end_at": "2026-11-27T16:00:00Z"}
schedule dentist tomorrow at 10am => create_event {"title": "Dentist", "start_at": "2026-11-27T10:00:00Z", "end_at": "2026-11-27T11:00:00Z"}
lunch with Ana next Tuesday at noon for 90 minutes => create_event {"title": "Lunch with Ana", "start_at": "2026-12-01T12:00:00Z", "end_at": "2026-12-01T13:30:00Z"}
team standup every Monday at 9am => create_event {"title": "Team standup", "start_at": "2026-11-30T09:00:00Z", "end_at": "2026-11-30T10:00:00Z", "recurrence": "FREQ=WEEKLY;BYDAY=MO"}
every day at 8am gym => create_event {"title": "Gym", "start_at": "2026-11-27T08:00:00Z", "end_at": "2026-11-27T09:00:00Z", "recurrence": "FREQ=DAILY"}
# Thursday 18:00 is still ahead: the first occurrence is today.
yoga every Tuesday and Thursday at 6pm => create_event {"title": "Yoga", "start_at": "2026-11-26T18:00:00Z", "end_at": "2026-11-26T19:00:00Z", "recurrence": "FREQ=WEEKLY;BYDAY=TU,TH"}
standup every weekday at 9:30 => create_event {"title": "Standup", "start_at": "2026-11-27T09:30:00Z", "end_at": "2026-11-27T10:30:00Z", "recurrence": "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"}
gym every other week on saturday at 10 => create_event {"title": "Gym", "start_at": "2026-11-28T10:00:00Z", "end_at": "2026-11-28T11:00:00Z", "recurrence": "FREQ=WEEKLY;INTERVAL=2"}
meeting at the office on Friday at 3pm => create_event {"title": "Meeting", "location": "the office", "start_at": "2026-11-27T15:00:00Z", "end_at": "2026-11-27T16:00:00Z"}
dinner at Luigi's tomorrow at 7pm => create_event {"title": "Dinner", "location": "Luigi's", "start_at": "2026-11-27T19:00:00Z", "end_at": "2026-11-27T20:00:00Z"}
call with Bob tomorrow 3-4pm => create_event {"title": "Call with Bob", "start_at": "2026-11-27T15:00:00Z", "end_at": "2026-11-27T16:00:00Z"}
set up a call with Ana tomorrow from 11 to 1 => create_event {"title": "Call with Ana", "start_at": "2026-11-27T11:00:00Z", "end_at": "2026-11-27T13:00:00Z"}
schedule a review from 2pm to 3:30pm on Thursday => create_event {"title": "Review", "start_at": "2026-12-03T14:00:00Z", "end_at": "2026-12-03T15:30:00Z"}
1:1 with Ana tomorrow at 14:00 for 45 min => create_event {"title": "1:1 with Ana", "start_at": "2026-11-27T14:00:00Z", "end_at": "2026-11-27T14:45:00Z"}
flight to Rome on 2026-12-20 at 06:45 => create_event {"title": "Flight to Rome", "start_at": "2026-12-20T06:45:00Z", "end_at": "2026-12-20T07:45:00Z"}
dinner 12/24 at 7 => create_event {"title": "Dinner", "start_at": "2026-12-24T19:00:00Z", "end_at": "2026-12-24T20:00:00Z"}
I have a dentist appointment tomorrow at 3pm => create_event {"title": "Dentist appointment", "start_at": "2026-11-27T15:00:00Z", "end_at": "2026-11-27T16:00:00Z"}
# A day without a time is an all-day event.
schedule dentist tomorrow => create_event {"title": "Dentist", "start_at": "2026-11-27T00:00:00Z", "end_at": "2026-11-28T00:00:00Z", "is_all_day": true}
holiday all day friday => create_event {"title": "Holiday", "start_at": "2026-11-27T00:00:00Z", "end_at": "2026-11-28T00:00:00Z", "is_all_day": true}
cancel my meeting with Sam => delete_event {"title": "meeting with Sam"}
delete the dentist appointment => delete_event {"title": "dentist appointment"}
remove dentist from my calendar => delete_event {"title": "dentist"}
"#;

    /// The calendar listed by day or span.
    const CALENDAR: &str = r#"
what's on my calendar tomorrow => list_events {"from": "2026-11-27T00:00:00Z", "to": "2026-11-28T00:00:00Z"}
what do I have on Friday => list_events {"from": "2026-11-27T00:00:00Z", "to": "2026-11-28T00:00:00Z"}
events this week => list_events {"from": "2026-11-26T10:00:00Z", "to": "2026-12-03T10:00:00Z"}
my schedule today => list_events {"from": "2026-11-26T00:00:00Z", "to": "2026-11-27T00:00:00Z"}
what's next week => list_events {"from": "2026-11-30T00:00:00Z", "to": "2026-12-07T00:00:00Z"}
am I free tomorrow? => list_events {"from": "2026-11-27T00:00:00Z", "to": "2026-11-28T00:00:00Z"}
do I have any meetings tomorrow? => list_events {"from": "2026-11-27T00:00:00Z", "to": "2026-11-28T00:00:00Z"}
what does my week look like => list_events {"from": "2026-11-26T10:00:00Z", "to": "2026-12-03T10:00:00Z"}
show me my appointments for next week => list_events {"from": "2026-11-30T00:00:00Z", "to": "2026-12-07T00:00:00Z"}
what's on this weekend => list_events {"from": "2026-11-28T00:00:00Z", "to": "2026-11-30T00:00:00Z"}
show my calendar => list_events {"from": "2026-11-26T10:00:00Z", "to": "2026-12-03T10:00:00Z"}
tomorrow? => list_events {"from": "2026-11-27T00:00:00Z", "to": "2026-11-28T00:00:00Z"}
"#;

    /// Facts remembered with their dates, and searched.
    const MEMORY: &str = r#"
remember that my sister's birthday is 3 May => remember {"content": "my sister's birthday is 3 May"}
my favorite color is green => remember {"content": "my favorite color is green"}
I'm allergic to peanuts => remember {"content": "I'm allergic to peanuts"}
my sister's birthday is March 3 => remember {"content": "my sister's birthday is March 3"}
I live in Lisbon => remember {"content": "I live in Lisbon"}
note: the wifi password is on the fridge => remember {"content": "the wifi password is on the fridge"}
don't forget that Sam likes green tea => remember {"content": "Sam likes green tea"}
Don’t forget that the party is tomorrow! => remember {"content": "the party is tomorrow"}
what do you know about my sister => search_memory {"query": "my sister"}
when is my sister's birthday? => search_memory {"query": "my sister's birthday"}
recall wifi => search_memory {"query": "wifi"}
search my notes for passwords => search_memory {"query": "passwords"}
what is the wifi password => search_memory {"query": "the wifi password"}
# "remember to" is a task, not a fact.
remember to buy milk => create_task {"title": "Buy milk"}
"#;

    /// Berlin, 11:00: times carry the zone's offset.
    const BERLIN: &str = r#"
remind me to call mom next Friday 5pm => create_reminder {"text": "Call mom", "due_at": "2026-11-27T17:00:00+01:00"}
meeting with Sam on Friday at 3pm for 1 hour => create_event {"title": "Meeting with Sam", "start_at": "2026-11-27T15:00:00+01:00", "end_at": "2026-11-27T16:00:00+01:00"}
what's on my calendar tomorrow => list_events {"from": "2026-11-27T00:00:00+01:00", "to": "2026-11-28T00:00:00+01:00"}
events this week => list_events {"from": "2026-11-26T11:00:00+01:00", "to": "2026-12-03T11:00:00+01:00"}
# Summer time by then.
party on March 30th at 8pm => create_event {"title": "Party", "start_at": "2027-03-30T20:00:00+02:00", "end_at": "2027-03-30T21:00:00+02:00"}
"#;

    /// New York, 05:00: today's 09:00 is still ahead, and "today" is the local day.
    const NEW_YORK: &str = r#"
buy milk today => create_task {"title": "Buy milk", "due_at": "2026-11-26T09:00:00-05:00"}
remind me to call mom tonight => create_reminder {"text": "Call mom", "due_at": "2026-11-26T20:00:00-05:00"}
gym at 6am => create_event {"title": "Gym", "start_at": "2026-11-26T06:00:00-05:00", "end_at": "2026-11-26T07:00:00-05:00"}
team standup every Monday at 9am => create_event {"title": "Team standup", "start_at": "2026-11-30T09:00:00-05:00", "end_at": "2026-11-30T10:00:00-05:00", "recurrence": "FREQ=WEEKLY;BYDAY=MO"}
what's on my calendar today => list_events {"from": "2026-11-26T00:00:00-05:00", "to": "2026-11-27T00:00:00-05:00"}
"#;

    /// Checks a table of `message => tool {arguments}` lines (`#` starts a comment) and
    /// reports all the misses at once.
    fn check(tz: Tz, table: &str) {
        let misses: Vec<String> = cases(table)
            .filter_map(|(text, tool, args)| {
                let got = understand(text, &now(tz));
                let hit = matches!(&got, Outcome::Calls(calls) if calls.len() == 1 && calls[0].0 == tool && calls[0].1 == args);
                (!hit).then(|| format!("{text:?}\n   want {tool} {args}\n   got  {got:?}"))
            })
            .collect();
        assert!(
            misses.is_empty(),
            "{} cases missed:\n{}",
            misses.len(),
            misses.join("\n")
        );
    }

    fn cases(table: &str) -> impl Iterator<Item = (&str, &str, Value)> {
        table
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|line| {
                let (text, call) = line.split_once(" => ").unwrap();
                let (tool, args) = call.split_once(' ').unwrap();
                (text, tool, serde_json::from_str(args).unwrap())
            })
    }

    fn say(text: &str) -> String {
        match understand(text, &now(UTC)) {
            Outcome::Say(reply) => reply,
            calls => panic!("{text:?}: expected a text answer, got {calls:?}"),
        }
    }

    #[test]
    fn tasks_are_added_with_dates_stripped_from_titles() {
        check(UTC, TASKS);
    }

    #[test]
    fn reminders_are_set_snoozed_listed_and_cancelled() {
        check(UTC, REMINDERS);
    }

    #[test]
    fn tasks_take_priority_and_project_words_out_of_the_title() {
        check(UTC, TASK_TAGS);
    }

    #[test]
    fn tasks_are_listed_completed_deleted_and_moved() {
        check(UTC, TASK_CHANGES);
    }

    #[test]
    fn events_are_scheduled_with_times_lengths_places_and_rules() {
        check(UTC, EVENTS);
    }

    #[test]
    fn the_calendar_is_listed_by_day_or_span() {
        check(UTC, CALENDAR);
    }

    #[test]
    fn facts_are_remembered_with_their_dates_and_searched() {
        check(UTC, MEMORY);
    }

    #[test]
    fn times_carry_the_offset_of_the_configured_zone() {
        check(Berlin, BERLIN);
        check(New_York, NEW_YORK);
    }

    #[test]
    fn talk_help_and_unknown_requests_get_text() {
        assert_eq!(say("hi"), GREETING);
        assert_eq!(say("Hello!"), GREETING);
        assert_eq!(say("thanks"), THANKS);
        assert_eq!(say("help"), HELP);
        assert_eq!(say("What can you do?"), HELP);
        for unknown in ["sing me a song", "buy sun cream", "delete", "I have a cat"] {
            let reply = say(unknown);
            assert!(
                reply.starts_with("Sorry, I didn't understand that."),
                "{unknown:?}: {reply}"
            );
            assert!(
                reply.contains("remind me to call mom"),
                "the reply gives examples: {reply}"
            );
        }
        // Too little to act on: a question back, no tool call.
        assert!(say("add a task").starts_with("What is the task?"));
        assert!(say("remind me to").starts_with("What should I remind you of?"));
        assert!(say("mark as done").starts_with("Which one?"));
        assert!(say("move it to monday").starts_with("Which task"));
    }

    #[test]
    fn every_call_fits_the_tool_schemas() {
        let tools = crate::ai::tools::all();
        for (text, _, _) in [TASKS, TASK_TAGS, TASK_CHANGES, EVENTS, CALENDAR, MEMORY]
            .into_iter()
            .flat_map(cases)
        {
            let Outcome::Calls(calls) = understand(text, &now(UTC)) else {
                panic!("{text:?}: no call")
            };
            for (name, args) in calls {
                let spec = tools
                    .iter()
                    .find(|t| t.name == name)
                    .unwrap_or_else(|| panic!("{name} is not a tool"));
                let properties = spec.parameters["properties"].as_object().unwrap();
                for key in args.as_object().unwrap().keys() {
                    assert!(
                        properties.contains_key(key),
                        "{text:?}: {name} has no argument {key}"
                    );
                }
                for required in spec.parameters["required"].as_array().unwrap() {
                    assert!(
                        args.get(required.as_str().unwrap()).is_some(),
                        "{text:?}: {name} needs {required}"
                    );
                }
            }
        }
    }

    #[test]
    fn odd_input_never_panics() {
        let long = "buy milk tomorrow at 5pm and ".repeat(400);
        let odd = [
            "",
            " ",
            "?",
            "!!!",
            "...",
            "🙂",
            "🥛🥛🥛",
            "—",
            "-",
            "@",
            "#",
            "at",
            "in",
            "for",
            "every",
            "every every",
            "on the",
            "in the",
            "3-",
            "-4pm",
            "12/",
            "/",
            "2026-",
            "2026-13-45",
            "99999999999999999999",
            "in 99999 years",
            "for 99999999 hours",
            "every 0 days",
            "at 0",
            "at 24",
            "remind me on 31 february to do it",
            "at 25pm",
            "13:75",
            "ÀÉÎ İstanbul ß",
            "meet at",
            "remind me to 🙂 tomorrow",
            "add 🥛 to my list",
            "'",
            "\"\"",
            "todo:",
            "remember that",
            "every monday and and",
            "from 3 to",
            long.as_str(),
        ];
        for text in odd {
            for tz in [UTC, Berlin, New_York] {
                let _ = understand(text, &now(tz));
            }
        }
        // A long message still makes one task, named by its words.
        assert!(matches!(understand(&long, &now(UTC)), Outcome::Calls(calls) if calls.len() == 1));
    }
}
