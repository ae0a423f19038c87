//! Date and time phrases: finds them among the words of a message, records which words they
//! took (so that titles can drop them), and resolves them against `now` in the user's zone.
//!
//! The scanner walks the words once; at each position it tries the [`MATCHERS`] in order and
//! takes the first phrase that fits, with a leading preposition ("on Friday", "at 5pm", "due by
//! Monday"). Each kind of piece (day, time, duration, repetition…) is taken once; a second one
//! is left in the text.
//!
//! Calendar days ("tomorrow", "next Friday", "3 May", "in 3 days", "2026-12-01") are computed
//! by `interim` after normalising the phrase to its grammar. It is given the local wall clock
//! (as a zone-less UTC value): only the calendar day is kept from its answer, and the time of
//! day and the zone are attached here, so a daylight-saving gap at midnight cannot make it fail
//! and "5pm tomorrow" cannot be read as today 17:00. Times of day ("5pm", "17:30", "noon",
//! "at 9"), ranges ("3-4pm"), durations ("for 90 minutes"), parts of the day ("tonight",
//! "tomorrow morning") and repetition ("every Monday", "daily") are read here.

use chrono::{Datelike, Days, Duration, Months, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono::{Utc, Weekday};
use interim::{Dialect, parse_date_string};

/// A part of the day: its default time, and how it reads a bare hour ("tonight at 9" = 21:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Morning,
    Afternoon,
    Evening,
    Night,
}

impl Part {
    fn parse(word: &str) -> Option<Self> {
        match word {
            "morning" => Some(Self::Morning),
            "afternoon" => Some(Self::Afternoon),
            "evening" => Some(Self::Evening),
            "night" | "tonight" => Some(Self::Night),
            _ => None,
        }
    }

    fn default_hour(self) -> u32 {
        match self {
            Self::Morning => 9,
            Self::Afternoon => 15,
            Self::Evening => 19,
            Self::Night => 20,
        }
    }
}

/// A stretch of days named as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    ThisWeek,
    NextWeek,
    Weekend,
    ThisMonth,
    NextMonth,
}

impl Span {
    /// The local range a listing covers: "this week" is the next 7 days, "next week" Monday to
    /// Monday, "this month" from now to the first of the next month.
    fn range(self, now: NaiveDateTime) -> Option<(NaiveDateTime, NaiveDateTime)> {
        let today = now.date();
        let monday = today + Days::new(7 - u64::from(today.weekday().num_days_from_monday()));
        let first_next = today.with_day(1)? + Months::new(1);
        let (from, to) = match self {
            Self::ThisWeek => return Some((now, now + Duration::days(7))),
            Self::NextWeek => (monday, monday + Days::new(7)),
            Self::Weekend => (monday - Days::new(2), monday),
            Self::ThisMonth => return Some((now, first_next.and_time(NaiveTime::MIN))),
            Self::NextMonth => (first_next, first_next + Months::new(1)),
        };
        let from = from.and_time(NaiveTime::MIN).max(now);
        Some((from, to.and_time(NaiveTime::MIN)))
    }

    /// The day a new task or event falls on: the first day, except for "this week" and "this
    /// month", which name their last day (a deadline).
    fn day(self, now: NaiveDateTime) -> Option<NaiveDate> {
        let (from, to) = self.range(now)?;
        match self {
            Self::ThisWeek => {
                Some(now.date() + Days::new(6 - u64::from(now.weekday().num_days_from_monday())))
            }
            Self::ThisMonth => to.date().pred_opt(),
            _ => Some(from.date()),
        }
    }
}

/// How often an event repeats, as an RFC 5545 rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freq {
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repeat {
    pub freq: Freq,
    pub interval: u32,
    /// Days of the week (`BYDAY`), Monday first; empty = the start's own day.
    pub days: Vec<Weekday>,
}

impl Repeat {
    fn new(freq: Freq) -> Self {
        Self {
            freq,
            interval: 1,
            days: Vec::new(),
        }
    }

    /// The rule without DTSTART, e.g. `FREQ=WEEKLY;BYDAY=MO,WE`.
    pub fn rrule(&self) -> String {
        let freq = match self.freq {
            Freq::Daily => "DAILY",
            Freq::Weekly => "WEEKLY",
            Freq::Monthly => "MONTHLY",
            Freq::Yearly => "YEARLY",
        };
        let mut rule = format!("FREQ={freq}");
        if self.interval > 1 {
            rule.push_str(&format!(";INTERVAL={}", self.interval));
        }
        if !self.days.is_empty() {
            let days: Vec<&str> = self
                .days
                .iter()
                .map(|d| BYDAY[d.num_days_from_monday() as usize])
                .collect();
            rule.push_str(&format!(";BYDAY={}", days.join(",")));
        }
        rule
    }

    /// The first day on or after `from` that the rule allows, and whose time is still ahead.
    fn first(
        &self,
        from: NaiveDate,
        time: Option<NaiveTime>,
        now: NaiveDateTime,
    ) -> Option<NaiveDate> {
        (0..8).map(|n| from + Days::new(n)).find(|day| {
            let allowed = self.days.is_empty() || self.days.contains(&day.weekday());
            allowed && time.map_or(*day >= now.date(), |t| day.and_time(t) > now)
        })
    }
}

const BYDAY: [&str; 7] = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"];

/// A clock time as written, before the part of the day settles am/pm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Clock {
    hour: u32,
    minute: u32,
    meridiem: Meridiem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meridiem {
    Am,
    Pm,
    /// 24-hour clock ("17:00", "09:30", "noon").
    Strict,
    /// No am/pm ("at 9", "3:30"): 1–7 read as afternoon unless the part of the day says.
    Bare,
}

impl Clock {
    const fn new(hour: u32, minute: u32, meridiem: Meridiem) -> Self {
        Self {
            hour,
            minute,
            meridiem,
        }
    }

    fn time(self, part: Option<Part>) -> Option<NaiveTime> {
        let h = self.hour;
        let hour = match self.meridiem {
            Meridiem::Am => h % 12,
            Meridiem::Pm => h % 12 + 12,
            Meridiem::Strict => h,
            Meridiem::Bare => match part {
                _ if h >= 12 => h,
                Some(Part::Morning) => h,
                Some(_) => h + 12,
                None if (1..=7).contains(&h) => h + 12,
                None => h,
            },
        };
        NaiveTime::from_hms_opt(hour, self.minute, 0)
    }
}

/// Everything the date and time phrases of a message said.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct When {
    pub day: Option<NaiveDate>,
    pub part: Option<Part>,
    start: Option<Clock>,
    end: Option<Clock>,
    /// An exact moment ("in 2 hours").
    pub instant: Option<NaiveDateTime>,
    pub minutes: Option<i64>,
    pub span: Option<Span>,
    pub repeat: Option<Repeat>,
    pub all_day: bool,
}

/// One phrase found by a matcher.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Day(NaiveDate, Option<Part>),
    Part(Part),
    Times(Clock, Option<Clock>),
    Instant(NaiveDateTime),
    Minutes(i64),
    Span(Span),
    Repeat(Repeat, Option<Part>),
    AllDay,
}

impl When {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// A time of day, a length or an end was given (what makes "X at 5pm" an event).
    pub fn is_timed(&self) -> bool {
        self.start.is_some() || self.minutes.is_some()
    }

    /// Takes a piece if its kind is still free.
    fn take(&mut self, piece: Piece) -> bool {
        fn put<T>(slot: &mut Option<T>, value: T) -> bool {
            let free = slot.is_none();
            if free {
                *slot = Some(value);
            }
            free
        }
        match piece {
            Piece::Day(day, part) => {
                let free = put(&mut self.day, day);
                if free && let Some(part) = part {
                    self.part.get_or_insert(part);
                }
                free
            }
            Piece::Part(part) => put(&mut self.part, part),
            Piece::Times(start, end) => {
                let free = put(&mut self.start, start);
                if free {
                    self.end = end;
                }
                free
            }
            Piece::Instant(at) => put(&mut self.instant, at),
            Piece::Minutes(minutes) => put(&mut self.minutes, minutes),
            Piece::Span(span) => put(&mut self.span, span),
            Piece::Repeat(repeat, part) => {
                let free = put(&mut self.repeat, repeat);
                if free && let Some(part) = part {
                    self.part.get_or_insert(part);
                }
                free
            }
            Piece::AllDay => !std::mem::replace(&mut self.all_day, true),
        }
    }

    /// Start and end times of day: the written ones (an end without am/pm follows the start's
    /// reading, "3-4pm"), else the part of the day's default start.
    pub fn times(&self) -> (Option<NaiveTime>, Option<NaiveTime>) {
        let Some(mut start) = self.start else {
            return (
                self.part
                    .and_then(|p| NaiveTime::from_hms_opt(p.default_hour(), 0, 0)),
                None,
            );
        };
        let end = self.end.and_then(|end| {
            if start.meridiem == Meridiem::Bare
                && matches!(end.meridiem, Meridiem::Am | Meridiem::Pm)
                && start.hour <= 12
            {
                let other = if end.meridiem == Meridiem::Am {
                    Meridiem::Pm
                } else {
                    Meridiem::Am
                };
                start.meridiem = end.meridiem;
                if start.time(None)? > end.time(None)? {
                    start.meridiem = other;
                }
            }
            end.time(self.part)
        });
        (start.time(self.part), end)
    }

    /// The local day and, when one was given, time of day that the phrases point at: a day
    /// ("Friday", "next week"), the first occurrence of a repetition, or — for a time alone —
    /// today if that time is still ahead, else tomorrow.
    pub fn anchor(&self, now: NaiveDateTime) -> Option<(NaiveDate, Option<NaiveTime>)> {
        if let Some(at) = self.instant {
            return Some((at.date(), Some(at.time())));
        }
        let (time, _) = self.times();
        let named = self.day.or_else(|| self.span.and_then(|s| s.day(now)));
        let day = match (&self.repeat, named) {
            (Some(repeat), from) => repeat.first(from.unwrap_or(now.date()), time, now)?,
            (None, Some(day)) => day,
            (None, None) => {
                let today = now.date();
                if today.and_time(time?) > now {
                    today
                } else {
                    today.succ_opt()?
                }
            }
        };
        Some((day, time))
    }

    /// The local range a listing should cover: a named span, or the whole day named.
    pub fn range(&self, now: NaiveDateTime) -> Option<(NaiveDateTime, NaiveDateTime)> {
        if let Some(span) = self.span {
            return span.range(now);
        }
        if self.day.is_none() && self.part.is_none() {
            return None;
        }
        let (day, _) = self.anchor(now)?;
        Some((
            day.and_time(NaiveTime::MIN),
            day.succ_opt()?.and_time(NaiveTime::MIN),
        ))
    }
}

/// Finds the date and time phrases among `words` (lower-cased, punctuation trimmed). Returns
/// what they say and which words they took.
pub fn extract(words: &[&str], now: NaiveDateTime) -> (When, Vec<bool>) {
    let mut when = When::default();
    let mut used = vec![false; words.len()];
    let mut i = 0;
    while i < words.len() {
        if let Some((len, piece)) = find(words, i, now)
            && when.take(piece)
        {
            used[i..i + len].fill(true);
            i += len;
        } else {
            i += 1;
        }
    }
    (when, used)
}

/// Words that may lead a date or time phrase and belong to it. Not "due": "what's due" must
/// stay readable, and titles drop a dangling "due".
const PREPOSITIONS: &[&str] = &[
    "on", "by", "at", "from", "for", "before", "around", "until", "till",
];

fn find(words: &[&str], i: usize, now: NaiveDateTime) -> Option<(usize, Piece)> {
    let at = |j: usize| {
        if j < words.len() {
            MATCHERS.iter().find_map(|matcher| matcher(words, j, now))
        } else {
            None
        }
    };
    if let Some(hit) = at(i) {
        return Some(hit);
    }
    // Up to two prepositions: "on Friday", "due by Monday".
    let mut j = i;
    while j < words.len() && j - i < 2 && PREPOSITIONS.contains(&words[j]) {
        j += 1;
        if let Some((len, piece)) = at(j) {
            return Some((j - i + len, piece));
        }
    }
    None
}

type Matcher = fn(&[&str], usize, NaiveDateTime) -> Option<(usize, Piece)>;

/// Tried in order at each word; the first that fits wins.
const MATCHERS: &[Matcher] = &[
    repetition,
    duration,
    relative,
    times,
    day_word,
    weekday,
    month_day,
    day_month,
    numeric_date,
    span,
    part_of_day,
    all_day,
];

/// The calendar day `interim` reads from a normalised phrase.
fn interim_day(phrase: &str, now: NaiveDateTime) -> Option<NaiveDate> {
    parse_date_string(phrase, Utc.from_utc_datetime(&now), Dialect::Us)
        .ok()
        .map(|at| at.date_naive())
}

/// A day-month without a year that is already past means next year's.
fn ahead(day: NaiveDate, now: NaiveDateTime) -> NaiveDate {
    if day < now.date() {
        day.with_year(day.year() + 1).unwrap_or(day)
    } else {
        day
    }
}

fn day_word(words: &[&str], i: usize, now: NaiveDateTime) -> Option<(usize, Piece)> {
    let (len, phrase, part) = match words[i..] {
        ["today" | "tod", ..] => (1, "today", None),
        ["tonight" | "tonite", ..] => (1, "today", Some(Part::Night)),
        [
            "tomorrow" | "tmrw" | "tmr" | "tomorow" | "tommorow" | "tommorrow",
            ..,
        ] => (1, "tomorrow", None),
        ["day", "after", "tomorrow", ..] => (3, "2 days", None),
        ["the", "day", "after", "tomorrow", ..] => (4, "2 days", None),
        _ => return None,
    };
    Some((len, Piece::Day(interim_day(phrase, now)?, part)))
}

const WEEKDAYS: [(Weekday, &str, &[&str]); 7] = [
    (Weekday::Mon, "monday", &["mon"]),
    (Weekday::Tue, "tuesday", &["tue", "tues"]),
    (Weekday::Wed, "wednesday", &["wed", "weds"]),
    (Weekday::Thu, "thursday", &["thu", "thur", "thurs"]),
    (Weekday::Fri, "friday", &["fri"]),
    (Weekday::Sat, "saturday", &["sat"]),
    (Weekday::Sun, "sunday", &["sun"]),
];

/// A weekday name (full, or abbreviated when `short` is allowed); `s` plurals when `plural`.
fn weekday_name(word: &str, short: bool, plural: bool) -> Option<(Weekday, &'static str)> {
    let word = if plural {
        word.strip_suffix('s')?
    } else {
        word
    };
    WEEKDAYS
        .iter()
        .find(|(_, full, abbrevs)| word == *full || (short && abbrevs.contains(&word)))
        .map(|(day, full, _)| (*day, *full))
}

/// Words after which an abbreviated weekday ("sun", "sat") reads as a day, not a word.
const DAY_CUES: &[&str] = &[
    "on", "by", "next", "this", "coming", "every", "each", "until", "till", "before", "from", "due",
];

fn weekday(words: &[&str], i: usize, now: NaiveDateTime) -> Option<(usize, Piece)> {
    let qualified = matches!(words[i], "next" | "this" | "coming");
    let at = i + usize::from(qualified);
    let cued = qualified || (i > 0 && DAY_CUES.contains(&words[i - 1]));
    let (_, name) = weekday_name(words.get(at)?, cued, false)?;
    // Dialect::Us reads "next Friday" as the coming Friday, like a plain "Friday".
    Some((at - i + 1, Piece::Day(interim_day(name, now)?, None)))
}

/// Month names and their usual abbreviations.
const MONTHS: [(&str, &[&str]); 12] = [
    ("january", &["jan"]),
    ("february", &["feb"]),
    ("march", &["mar"]),
    ("april", &["apr"]),
    ("may", &[]),
    ("june", &["jun"]),
    ("july", &["jul"]),
    ("august", &["aug"]),
    ("september", &["sep", "sept"]),
    ("october", &["oct"]),
    ("november", &["nov"]),
    ("december", &["dec"]),
];

fn month(word: &str) -> Option<&'static str> {
    MONTHS
        .iter()
        .find(|(full, abbrevs)| word == *full || abbrevs.contains(&word))
        .map(|(full, _)| *full)
}

/// A day of the month: "3", "3rd", "21st".
fn day_number(word: &str) -> Option<u32> {
    let digits = ["st", "nd", "rd", "th"]
        .iter()
        .find_map(|s| word.strip_suffix(s))
        .unwrap_or(word);
    digits.parse().ok().filter(|d| (1..=31).contains(d))
}

fn year(word: Option<&&str>) -> Option<i32> {
    word.and_then(|w| w.parse().ok())
        .filter(|y| (1970..=2200).contains(y))
}

/// The day from "<month> <day>[, <year>]", pushed to next year when past and no year given.
fn dated(month: &str, day: u32, year: Option<i32>, now: NaiveDateTime) -> Option<NaiveDate> {
    match year {
        Some(y) => interim_day(&format!("{month} {day}, {y}"), now),
        None => interim_day(&format!("{month} {day}"), now).map(|d| ahead(d, now)),
    }
}

/// "May 3", "May 3rd 2027".
fn month_day(words: &[&str], i: usize, now: NaiveDateTime) -> Option<(usize, Piece)> {
    let month = month(words[i])?;
    let day = day_number(words.get(i + 1)?)?;
    let year = year(words.get(i + 2));
    Some((
        2 + usize::from(year.is_some()),
        Piece::Day(dated(month, day, year, now)?, None),
    ))
}

/// "3 May", "the 3rd of May 2027".
fn day_month(words: &[&str], i: usize, now: NaiveDateTime) -> Option<(usize, Piece)> {
    let mut at = i + usize::from(words[i] == "the");
    let day = day_number(words.get(at)?)?;
    at += 1;
    at += usize::from(words.get(at) == Some(&"of"));
    let month = month(words.get(at)?)?;
    let year = year(words.get(at + 1));
    let len = at + 1 + usize::from(year.is_some()) - i;
    Some((len, Piece::Day(dated(month, day, year, now)?, None)))
}

/// "2026-12-01", "12/25", "12/25/2026" (month first).
fn numeric_date(words: &[&str], i: usize, now: NaiveDateTime) -> Option<(usize, Piece)> {
    let word = words[i];
    let parts: Vec<&str> = word.split(['-', '/']).collect();
    let numeric = parts
        .iter()
        .all(|p| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit()));
    let iso = word.contains('-') && parts.len() == 3 && parts[0].len() == 4;
    let slashed = word.contains('/') && !word.contains('-') && (2..=3).contains(&parts.len());
    if !numeric || !(iso || slashed) {
        return None;
    }
    let day = interim_day(word, now)?;
    Some((
        1,
        Piece::Day(
            if parts.len() == 2 {
                ahead(day, now)
            } else {
                day
            },
            None,
        ),
    ))
}

/// A small count: digits or a number word.
fn count(word: &str) -> Option<u32> {
    const WORDS: [&str; 12] = [
        "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
        "twelve",
    ];
    match word {
        "a" | "an" => Some(1),
        _ => (1..)
            .zip(WORDS)
            .find_map(|(n, name)| (name == word).then_some(n))
            .or_else(|| word.parse().ok().filter(|n| (1..=999).contains(n))),
    }
}

/// "30 minutes", "an hour", "2 days" as minutes (a reminder's "… before").
pub fn amount_minutes(number: &str, unit_word: &str) -> Option<i64> {
    let n = i64::from(count(number)?);
    let per = match unit(unit_word)? {
        Unit::Minute => 1,
        Unit::Hour => 60,
        Unit::Day => 24 * 60,
        Unit::Week => 7 * 24 * 60,
        Unit::Month | Unit::Year => return None,
    };
    Some(n * per).filter(|m| *m <= 40_320)
}

#[derive(Clone, Copy, PartialEq)]
enum Unit {
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

fn unit(word: &str) -> Option<Unit> {
    Some(match word {
        "m" | "min" | "mins" | "minute" | "minutes" => Unit::Minute,
        "h" | "hr" | "hrs" | "hour" | "hours" => Unit::Hour,
        "day" | "days" => Unit::Day,
        "week" | "weeks" => Unit::Week,
        "month" | "months" => Unit::Month,
        "year" | "years" => Unit::Year,
        _ => return None,
    })
}

/// "in 3 days", "in a week", "in 2 hours", "in 30min".
fn relative(words: &[&str], i: usize, now: NaiveDateTime) -> Option<(usize, Piece)> {
    if !matches!(words[i], "in" | "within") {
        return None;
    }
    let (n, unit, len) = match (
        count(words.get(i + 1)?),
        words.get(i + 2).and_then(|w| unit(w)),
    ) {
        (Some(n), Some(unit)) => (n, unit, 3),
        _ => {
            let minutes = compact_minutes(words[i + 1])?;
            return Some((2, Piece::Instant(now + Duration::minutes(minutes))));
        }
    };
    let piece = match unit {
        Unit::Minute => Piece::Instant(now + Duration::minutes(i64::from(n))),
        Unit::Hour => Piece::Instant(now + Duration::hours(i64::from(n))),
        Unit::Day | Unit::Week | Unit::Month | Unit::Year => {
            let name = match unit {
                Unit::Day => "days",
                Unit::Week => "weeks",
                Unit::Month => "months",
                _ => "years",
            };
            Piece::Day(interim_day(&format!("{n} {name}"), now)?, None)
        }
    };
    Some((len, piece))
}

/// "90min", "1h", "1.5h", "2hrs", "1h30" as minutes.
fn compact_minutes(word: &str) -> Option<i64> {
    let split = word.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (number, rest) = word.split_at(split);
    let number: f64 = number.parse().ok()?;
    let (unit_word, extra) = match rest.find(|c: char| c.is_ascii_digit()) {
        Some(at) => (
            &rest[..at],
            rest[at..]
                .trim_end_matches(['m', 'i', 'n', 's'])
                .parse::<f64>()
                .ok()?,
        ),
        None => (rest, 0.0),
    };
    let minutes = match unit(unit_word)? {
        Unit::Minute => number,
        Unit::Hour => number * 60.0 + extra,
        _ => return None,
    };
    sane_minutes(minutes)
}

fn sane_minutes(minutes: f64) -> Option<i64> {
    (1.0..=7.0 * 24.0 * 60.0)
        .contains(&minutes)
        .then(|| minutes.round() as i64)
}

/// "for 90 minutes", "for an hour", "for half an hour", "for 1.5 hours", "for 2h",
/// "for an hour and a half", "for 1 hour 30 minutes".
fn duration(words: &[&str], i: usize, _now: NaiveDateTime) -> Option<(usize, Piece)> {
    if words[i] != "for" {
        return None;
    }
    let rest = &words[i + 1..];
    let (minutes, len) = match rest {
        ["half", "an", "hour", ..] => (30.0, 3),
        [n, u, "and", "a", "half", ..] if unit(u) == Some(Unit::Hour) && count(n).is_some() => {
            (f64::from(count(n)?) * 60.0 + 30.0, 5)
        }
        [n, u, ..] if unit(u).is_some_and(|u| matches!(u, Unit::Minute | Unit::Hour)) => {
            let number = count(n).map(f64::from).or_else(|| n.parse().ok())?;
            let per = if unit(u) == Some(Unit::Hour) {
                60.0
            } else {
                1.0
            };
            match &rest[2..] {
                ["and", m, "minutes" | "mins" | "min", ..] => {
                    (number * per + f64::from(count(m)?), 5)
                }
                [m, "minutes" | "mins" | "min", ..] if per > 1.0 && count(m).is_some() => {
                    (number * per + f64::from(count(m)?), 4)
                }
                _ => (number * per, 2),
            }
        }
        [word, ..] => (compact_minutes(word)? as f64, 1),
        [] => return None,
    };
    Some((len + 1, Piece::Minutes(sane_minutes(minutes)?)))
}

/// A clock time in one word ("5pm", "17:30", "noon") or two ("5 pm", "9 o'clock"); a bare
/// hour only when `bare` (after "at", "from"…).
fn clock(words: &[&str], i: usize, bare: bool) -> Option<(Clock, usize)> {
    let word = *words.get(i)?;
    let strict = |hour| Some((Clock::new(hour, 0, Meridiem::Strict), 1));
    match word {
        "noon" | "midday" => return strict(12),
        "midnight" => return strict(0),
        _ => {}
    }
    let suffix = |w: &str| match w {
        "am" | "a.m" => Some(Meridiem::Am),
        "pm" | "p.m" => Some(Meridiem::Pm),
        _ => None,
    };
    let (digits, mut meridiem) = ["am", "a.m", "pm", "p.m"]
        .iter()
        .find_map(|s| {
            word.strip_suffix(s)
                .filter(|d| !d.is_empty())
                .map(|d| (d, suffix(s)))
        })
        .unwrap_or((word, None));
    let mut len = 1;
    if meridiem.is_none() {
        match words.get(i + 1).copied() {
            Some(next) if suffix(next).is_some() => (meridiem, len) = (suffix(next), 2),
            Some("o'clock" | "oclock") => (meridiem, len) = (Some(Meridiem::Bare), 2),
            _ => {}
        }
    }
    let separator = if meridiem.is_some() {
        &[':', '.'][..]
    } else {
        &[':'][..]
    };
    let (hour, minute) = match digits.split_once(separator) {
        Some((h, m)) if m.len() == 2 => (h, m.parse().ok()?),
        Some(_) => return None,
        None => (digits, 0),
    };
    if hour.is_empty() || hour.len() > 2 || !hour.bytes().all(|b| b.is_ascii_digit()) || minute > 59
    {
        return None;
    }
    let value: u32 = hour.parse().ok()?;
    let colon = digits.contains(':');
    let meridiem = match meridiem {
        Some(Meridiem::Am | Meridiem::Pm) if !(1..=12).contains(&value) => return None,
        Some(m) => m,
        None if colon && (hour.starts_with('0') || value >= 13) => Meridiem::Strict,
        None if colon || bare => Meridiem::Bare,
        None => return None,
    };
    (value <= 23).then_some((Clock::new(value, minute, meridiem), len))
}

const BARE_CUES: &[&str] = &["at", "from", "around", "by", "until", "till"];

/// A time, optionally a range: "5pm", "at 9", "3pm to 4pm", "from 3 to 4pm", "3-4pm".
fn times(words: &[&str], i: usize, _now: NaiveDateTime) -> Option<(usize, Piece)> {
    let bare = i > 0 && BARE_CUES.contains(&words[i - 1]);
    if let Some((from, to)) = words[i].split_once(['-', '–']) {
        let (start, _) = clock(&[from], 0, true)?;
        let (end, _) = clock(&[to], 0, true)?;
        return Some((1, Piece::Times(start, Some(end))));
    }
    let (start, len) = clock(words, i, bare)?;
    let end = match words.get(i + len) {
        Some(&("to" | "until" | "till" | "-" | "–")) => clock(words, i + len + 1, true),
        _ => None,
    };
    Some(match end {
        Some((end, more)) => (len + 1 + more, Piece::Times(start, Some(end))),
        None => (len, Piece::Times(start, None)),
    })
}

/// "this week", "next week", "this weekend", "next month".
fn span(words: &[&str], i: usize, _now: NaiveDateTime) -> Option<(usize, Piece)> {
    let span = match words[i..] {
        ["this" | "the", "weekend", ..] | ["next" | "coming", "weekend", ..] => Span::Weekend,
        ["this", "week", ..] => Span::ThisWeek,
        ["next" | "coming", "week", ..] => Span::NextWeek,
        ["this", "month", ..] => Span::ThisMonth,
        ["next" | "coming", "month", ..] => Span::NextMonth,
        _ => return None,
    };
    Some((2, Piece::Span(span)))
}

/// "this morning", "in the evening", and "morning" right after a day ("tomorrow morning").
fn part_of_day(words: &[&str], i: usize, _now: NaiveDateTime) -> Option<(usize, Piece)> {
    let (len, word) = match words[i..] {
        ["this", w, ..] => (2, w),
        ["in", "the", w, ..] => (3, w),
        [w, ..] if i > 0 && is_day(words[i - 1]) => (1, w),
        _ => return None,
    };
    Some((
        len,
        Piece::Part(Part::parse(word).filter(|p| *p != Part::Night || word == "night")?),
    ))
}

fn is_day(word: &str) -> bool {
    matches!(word, "today" | "tomorrow" | "tmrw") || weekday_name(word, true, false).is_some()
}

fn all_day(words: &[&str], i: usize, _now: NaiveDateTime) -> Option<(usize, Piece)> {
    match words[i..] {
        ["all", "day", ..] | ["the", "whole", "day", ..] => {
            Some((if words[i] == "all" { 2 } else { 3 }, Piece::AllDay))
        }
        ["all-day", ..] => Some((1, Piece::AllDay)),
        _ => None,
    }
}

/// "every Monday", "every Mon and Wed", "every day", "every weekday", "every other week",
/// "every 2 weeks", "every morning", "daily", "weekly", "on Mondays".
fn repetition(words: &[&str], i: usize, _now: NaiveDateTime) -> Option<(usize, Piece)> {
    let single = |freq, len| Some((len, Piece::Repeat(Repeat::new(freq), None)));
    match words[i] {
        "daily" => return single(Freq::Daily, 1),
        "weekly" => return single(Freq::Weekly, 1),
        "monthly" => return single(Freq::Monthly, 1),
        "yearly" | "annually" => return single(Freq::Yearly, 1),
        "biweekly" | "fortnightly" => {
            return Some((
                1,
                Piece::Repeat(
                    Repeat {
                        interval: 2,
                        ..Repeat::new(Freq::Weekly)
                    },
                    None,
                ),
            ));
        }
        "every" | "each" => {}
        _ => {
            // "on Mondays", "Mondays and Thursdays"
            let (days, len) = weekday_list(words, i, true)?;
            return Some((
                len,
                Piece::Repeat(
                    Repeat {
                        days,
                        ..Repeat::new(Freq::Weekly)
                    },
                    None,
                ),
            ));
        }
    }
    let rest = &words[i + 1..];
    let unit_freq = |w: &str| match unit(w)? {
        Unit::Day => Some(Freq::Daily),
        Unit::Week => Some(Freq::Weekly),
        Unit::Month => Some(Freq::Monthly),
        Unit::Year => Some(Freq::Yearly),
        _ => None,
    };
    let (repeat, part, len) = match rest {
        [w, ..] if Part::parse(w).is_some() && *w != "tonight" => {
            (Repeat::new(Freq::Daily), Part::parse(w), 1)
        }
        ["weekday" | "weekdays", ..] => (
            Repeat {
                days: vec![
                    Weekday::Mon,
                    Weekday::Tue,
                    Weekday::Wed,
                    Weekday::Thu,
                    Weekday::Fri,
                ],
                ..Repeat::new(Freq::Weekly)
            },
            None,
            1,
        ),
        ["weekend" | "weekends", ..] => (
            Repeat {
                days: vec![Weekday::Sat, Weekday::Sun],
                ..Repeat::new(Freq::Weekly)
            },
            None,
            1,
        ),
        ["other", w, ..] => (
            Repeat {
                interval: 2,
                ..Repeat::new(unit_freq(w)?)
            },
            None,
            2,
        ),
        [n, w, ..] if count(n).is_some_and(|n| n > 1) && unit_freq(w).is_some() => (
            Repeat {
                interval: count(n)?,
                ..Repeat::new(unit_freq(w)?)
            },
            None,
            2,
        ),
        [w, ..] if unit_freq(w).is_some() => (Repeat::new(unit_freq(w)?), None, 1),
        _ => {
            let (days, len) = weekday_list(words, i + 1, false)?;
            (
                Repeat {
                    days,
                    ..Repeat::new(Freq::Weekly)
                },
                None,
                len,
            )
        }
    };
    Some((len + 1, Piece::Repeat(repeat, part)))
}

/// "monday", "mon and wed", "tuesday, thursday" (commas are already gone), sorted Monday first.
fn weekday_list(words: &[&str], i: usize, plural: bool) -> Option<(Vec<Weekday>, usize)> {
    let mut days = vec![weekday_name(words.get(i)?, !plural, plural)?.0];
    let mut len = 1;
    loop {
        let joined = matches!(words.get(i + len), Some(&("and" | "&")));
        let at = i + len + usize::from(joined);
        match words.get(at).and_then(|w| weekday_name(w, !plural, plural)) {
            Some((day, _)) => {
                days.push(day);
                len = at - i + 1;
            }
            None => break,
        }
    }
    days.sort_by_key(|d| d.num_days_from_monday());
    days.dedup();
    Some((days, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Thursday 2026-11-26 10:00 local.
    fn now() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 11, 26)
            .unwrap()
            .and_hms_opt(10, 0, 0)
            .unwrap()
    }

    fn read(text: &str) -> (When, Vec<bool>) {
        let words: Vec<&str> = text.split_whitespace().collect();
        extract(&words, now())
    }

    /// "YYYY-MM-DD HH:MM" of the anchor, "YYYY-MM-DD" when no time was given.
    fn at(text: &str) -> String {
        match read(text).0.anchor(now()) {
            Some((day, Some(time))) => format!("{day} {}", time.format("%H:%M")),
            Some((day, None)) => day.to_string(),
            None => "-".into(),
        }
    }

    #[test]
    fn days_and_times_resolve_against_now() {
        let cases = [
            ("tomorrow", "2026-11-27"),
            ("5pm tomorrow", "2026-11-27 17:00"),
            ("tomorrow at 5pm", "2026-11-27 17:00"),
            ("next friday 5pm", "2026-11-27 17:00"),
            ("on friday at 3pm", "2026-11-27 15:00"),
            ("thursday", "2026-12-03"),
            ("in 3 days", "2026-11-29"),
            ("in a week", "2026-12-03"),
            ("in 2 hours", "2026-11-26 12:00"),
            ("monday 9am", "2026-11-30 09:00"),
            ("may 3", "2027-05-03"),
            ("3 may", "2027-05-03"),
            ("the 3rd of may", "2027-05-03"),
            ("may 3 2026", "2026-05-03"),
            ("december 24th", "2026-12-24"),
            ("2026-12-01", "2026-12-01"),
            ("12/25", "2026-12-25"),
            ("1/5", "2027-01-05"),
            // A time alone: today while ahead, else tomorrow.
            ("at 11am", "2026-11-26 11:00"),
            ("at 9am", "2026-11-27 09:00"),
            ("tonight", "2026-11-26 20:00"),
            ("tonight at 9", "2026-11-26 21:00"),
            ("tomorrow morning at 8", "2026-11-27 08:00"),
            ("friday evening at 7", "2026-11-27 19:00"),
            ("this afternoon", "2026-11-26 15:00"),
            ("at noon", "2026-11-26 12:00"),
            ("12pm tomorrow", "2026-11-27 12:00"),
            ("tomorrow 12am", "2026-11-27 00:00"),
            ("tomorrow at 17:30", "2026-11-27 17:30"),
            ("tomorrow at 5:30 pm", "2026-11-27 17:30"),
            ("tomorrow at 09:00", "2026-11-27 09:00"),
            ("next week", "2026-11-30"),
            ("this week", "2026-11-29"),
            ("this weekend", "2026-11-28"),
            ("next month", "2026-12-01"),
            ("the day after tomorrow", "2026-11-28"),
            ("every monday at 9am", "2026-11-30 09:00"),
            ("every day at 8am", "2026-11-27 08:00"),
            ("every day at 11am", "2026-11-26 11:00"),
        ];
        let misses: Vec<String> = cases
            .iter()
            .filter(|(text, want)| at(text) != *want)
            .map(|(text, want)| format!("{text:?}: want {want}, got {}", at(text)))
            .collect();
        assert!(misses.is_empty(), "{}", misses.join("\n"));
    }

    #[test]
    fn ranges_lengths_and_rules_are_read() {
        let range = |text: &str| {
            let (when, _) = read(text);
            let (start, end) = when.times();
            format!(
                "{}–{}",
                start.unwrap().format("%H:%M"),
                end.unwrap().format("%H:%M")
            )
        };
        assert_eq!(range("3-4pm"), "15:00–16:00");
        assert_eq!(range("11-1pm"), "11:00–13:00");
        assert_eq!(range("from 10 to 11am"), "10:00–11:00");
        assert_eq!(range("9am-5pm"), "09:00–17:00");
        assert_eq!(range("from 14:00 to 15:30"), "14:00–15:30");
        let minutes = |text: &str| read(text).0.minutes;
        assert_eq!(minutes("for 90 minutes"), Some(90));
        assert_eq!(minutes("for an hour"), Some(60));
        assert_eq!(minutes("for half an hour"), Some(30));
        assert_eq!(minutes("for an hour and a half"), Some(90));
        assert_eq!(minutes("for 1.5 hours"), Some(90));
        assert_eq!(minutes("for 2h"), Some(120));
        assert_eq!(minutes("for 1h30"), Some(90));
        assert_eq!(minutes("for 1 hour 30 minutes"), Some(90));
        assert_eq!(minutes("for 2 days"), None);
        let rule = |text: &str| read(text).0.repeat.map(|r| r.rrule());
        assert_eq!(
            rule("every monday").as_deref(),
            Some("FREQ=WEEKLY;BYDAY=MO")
        );
        assert_eq!(
            rule("every wed and mon and wed").as_deref(),
            Some("FREQ=WEEKLY;BYDAY=MO,WE")
        );
        assert_eq!(
            rule("on tuesdays and thursdays").as_deref(),
            Some("FREQ=WEEKLY;BYDAY=TU,TH")
        );
        assert_eq!(rule("every day").as_deref(), Some("FREQ=DAILY"));
        assert_eq!(rule("daily").as_deref(), Some("FREQ=DAILY"));
        assert_eq!(
            rule("every weekday").as_deref(),
            Some("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR")
        );
        assert_eq!(
            rule("every 3 months").as_deref(),
            Some("FREQ=MONTHLY;INTERVAL=3")
        );
        assert_eq!(
            rule("every other year").as_deref(),
            Some("FREQ=YEARLY;INTERVAL=2")
        );
        assert_eq!(
            rule("fortnightly").as_deref(),
            Some("FREQ=WEEKLY;INTERVAL=2")
        );
        assert_eq!(read("every morning").0.part, Some(Part::Morning));
    }

    #[test]
    fn listing_ranges_cover_whole_days_or_spans() {
        let range = |text: &str| {
            read(text)
                .0
                .range(now())
                .map(|(from, to)| format!("{from} → {to}"))
        };
        assert_eq!(
            range("tomorrow").as_deref(),
            Some("2026-11-27 00:00:00 → 2026-11-28 00:00:00")
        );
        assert_eq!(
            range("this week").as_deref(),
            Some("2026-11-26 10:00:00 → 2026-12-03 10:00:00")
        );
        assert_eq!(
            range("next week").as_deref(),
            Some("2026-11-30 00:00:00 → 2026-12-07 00:00:00")
        );
        assert_eq!(
            range("this weekend").as_deref(),
            Some("2026-11-28 00:00:00 → 2026-11-30 00:00:00")
        );
        assert_eq!(
            range("this month").as_deref(),
            Some("2026-11-26 10:00:00 → 2026-12-01 00:00:00")
        );
        assert_eq!(
            range("next month").as_deref(),
            Some("2026-12-01 00:00:00 → 2027-01-01 00:00:00")
        );
        assert_eq!(
            range("tonight").as_deref(),
            Some("2026-11-26 00:00:00 → 2026-11-27 00:00:00")
        );
        assert_eq!(range("buy milk"), None);
    }

    #[test]
    fn ordinary_words_are_not_dates() {
        for text in [
            "buy sun cream",
            "i may go",
            "march on",
            "buy 2 apples",
            "second try",
            "at the office",
            "for the team",
            "in the box",
            "a fri",
            "mon ami",
            "this is it",
            "every one of them",
            "on 31 february",
            "at 25pm",
            "13:75",
            "in a while",
        ] {
            let (when, used) = read(text);
            assert!(when.is_empty(), "{text:?} read as {when:?}");
            assert!(!used.contains(&true), "{text:?}");
        }
        // The words a phrase took, preposition included.
        assert_eq!(
            read("call mom on friday at 5pm").1,
            [false, false, true, true, true, true]
        );
    }
}
