#!/usr/bin/env python3
"""Build the Pixie memory-retrieval benchmark: writes dataset.json next to this file.

* Hand-written facts, hard distractors and labelled questions live in the sibling
  file facts.txt (format documented at its top).
* Filler documents (small-talk chat messages, routine to-dos, recurring and routine
  calendar events) are generated here from hand-written pools, with a fixed seed.
* Stdlib only, deterministic: running it twice gives a byte-identical dataset.json.
* Quality checks at the end raise SystemExit (non-zero) if anything is violated.

Usage:  python3 make_dataset.py
"""
import datetime as dt
import json
import math
import os
import random
import re
import sys
from collections import Counter, defaultdict

sys.dont_write_bytecode = True

SEED = 20261001
HERE = os.path.dirname(os.path.abspath(__file__))
FACTS = os.path.join(HERE, "facts.txt")
OUT = os.path.join(HERE, "dataset.json")

CATEGORIES = ["paraphrase", "synonym", "lexical", "date", "name", "distractor"]
MIN_PER_CATEGORY = {"paraphrase": 35, "synonym": 35, "lexical": 35, "date": 35, "name": 35, "distractor": 35}
KINDS = ["memory", "task", "event", "message"]
KIND_LETTER = {"memory": "m", "task": "t", "event": "e", "message": "c"}

# Share of each kind in a user's document set. The number of hand-written memories
# fixes the user's total size; tasks/events are topped up with routine filler, the
# rest are chat messages.
MEMORY_SHARE = 0.165
TASK_SHARE = 0.125
EVENT_SHARE = 0.125

# Calendar window for generated events.
WINDOW_START = dt.date(2026, 9, 28)   # a Monday
WINDOW_END = dt.date(2027, 3, 31)
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

# --------------------------------------------------------------------------------------
# Filler pools (hand-written). Slots in {braces}; {name} comes from the user's N line,
# a slot ending in "2" draws from the same pool as its base but a different value.
# None of these state a fact that answers a benchmark question.
# --------------------------------------------------------------------------------------
SLOTS = {
    "day": ["today", "tomorrow", "tonight", "this weekend", "on friday", "on monday", "next week",
            "thursday afternoon", "saturday morning", "this evening", "on tuesday", "wednesday"],
    "time": ["8am", "9:30", "10", "noon", "1pm", "2:30", "4pm", "5:15", "6pm", "7:30"],
    "food": ["tacos", "pho", "pizza", "ramen", "a big salad", "leftovers", "pad thai", "a burrito",
             "curry", "dumplings", "grilled cheese", "soup", "sushi", "a poke bowl", "falafel", "fried rice"],
    "drink": ["coffee", "tea", "a smoothie", "sparkling water", "hot chocolate", "iced coffee", "lemonade"],
    "grocery": ["eggs", "milk", "bananas", "coffee filters", "paper towels", "olive oil", "rice", "spinach",
                "yogurt", "dish soap", "bread", "tortillas", "garlic", "onions", "butter", "apples",
                "trash bags", "toothpaste", "frozen peas", "peanut butter", "lemons", "cereal"],
    "chore": ["do laundry", "vacuum", "clean the bathroom", "water the plants", "empty the dishwasher",
              "fold the towels", "wipe down the counters", "change the sheets", "sort the mail", "dust the shelves",
              "clean out the fridge", "mop the kitchen"],
    "num": ["5", "10", "12", "15", "20", "25", "30", "45"],
    "mood": ["tired", "stressed", "pretty good", "kind of off", "sleepy", "restless", "cheerful",
             "overwhelmed", "grumpy", "motivated", "scatterbrained", "calm"],
    "weather": ["rain", "snow", "wind", "fog", "heat", "drizzle"],
    "weatherverb": ["rain", "snow", "be windy", "be foggy", "storm", "freeze"],
    "place": ["the grocery store", "the post office", "the pharmacy", "the bank", "the hardware store",
              "the gym", "the library", "downtown", "the mall", "the farmers market", "target"],
    "month": ["october", "november", "december", "january", "february", "march"],
}

MESSAGE_TEMPLATES = """
what's on my calendar {day}?
do i have anything {day}
am i free {day} at {time}?
what does {day} look like for me
any meetings {day}?
can you clear my schedule {day}
push my {time} back half an hour
what's my first meeting {day}?
is there anything i'm forgetting {day}?
how busy am i next week
block off {day} for deep work
whats next on my calendar
do i have time for lunch {day}?
cancel whatever i have at {time}
when is my next free afternoon?
list everything for this week
anything on the calendar this weekend?
what time is my last meeting {day}
move the {time} thing to tomorrow
how many meetings do i have {day}
remind me to {chore} {day}
add "{chore}" to my to-do list
what's on my to-do list?
show me overdue tasks
mark {chore} as done
what tasks are due this week?
i finished the {chore} thing, check it off
remind me in {num} minutes to stretch
set a reminder for {time} to take a break
what was i supposed to do {day}?
did i already {chore}?
snooze that reminder for an hour
remind me to drink water every couple hours
clear all completed tasks
what's my most urgent task right now
add {grocery} to the shopping list
we're out of {grocery}
put {grocery} and {grocery2} on the list
what's on the grocery list?
remind me to pick up {grocery} on the way home
did i already buy {grocery}?
remove {grocery} from the list, got it
running to {place}, anything i need?
need to stop by {place} {day}
is {place} open late {day}?
set a timer for {num} minutes
cancel the timer
how many tablespoons in a quarter cup
convert {num} miles to kilometers
what's {num} percent of 240
how many ounces in a liter
what's 350 fahrenheit in celsius
how do you spell accommodate
what's another word for busy
what time is it in tokyo right now
how many days until christmas?
what day of the week is new year's day next year
translate "where is the train station" into spanish
flip a coin for me
pick a number between 1 and {num}
what's the weather {day}?
is it going to {weatherverb} {day}?
do i need an umbrella {day}
how cold is it outside right now
ugh, the {weather} is not letting up
so much {weather} this week
should i bike or take the bus in this weather
it's so nice out today
is it jacket weather?
what's the high for {day}?
good morning!
morning, how's it going
hey there
thanks, that helps
thank you so much
ok cool
sounds good
never mind
haha that's funny
you're the best
good night!
that's not what i meant
try again please
hmm, not sure about that
yes please
no thanks
wait, go back
perfect, thanks
lol fair enough
that's wild
are you there?
can you hear me
ok nevermind, figured it out
sorry, typo
let me think about it
maybe later
hi again
just testing something
how are you today?
tell me a joke
tell me something interesting
that joke was terrible lol
i'm bored
what should i do this weekend?
give me a fun fact
feeling {mood} today
long day, finally home
i'm so {mood} right now
couldn't sleep last night
slept like a rock for once
today was actually pretty great
not my best day honestly
i need a vacation
so ready for the weekend
mondays, am i right
i think i'm getting a cold
my back hurts from sitting all day
headache again, ugh
finally got some exercise in
i should really go to bed earlier
need more coffee
i've had way too much coffee today
took a nap and feel worse
just got back from a walk, feeling better
i'm proud of myself today
ugh, traffic was terrible today
the bus was late again
my phone battery dies so fast lately
the neighbors are being loud again
why is everything so expensive now
the internet is so slow tonight
my laptop keeps freezing
the printer jammed again, of course
someone ate my lunch from the fridge
the elevator is out again
i spilled coffee all over my shirt
got a parking ticket, great
my package still hasn't arrived
the grocery store was out of {grocery}
i hate when people reply all
stuck on hold for {num} minutes
the app logged me out again
i keep forgetting my umbrella
the kitchen smells weird
it's way too hot in here
the heater is making that noise again
why do meetings always run over
my headphones broke
the construction next door started at 7am
lost my keys for like 20 minutes this morning
thinking about {food} for dinner
had {food} for lunch, no regrets
should i cook or order in tonight?
what can i make with {grocery} and {grocery2}?
give me a quick dinner idea
i want {food} so bad right now
any ideas for a healthy breakfast?
how long do i boil an egg for a soft yolk
how long does cooked rice keep in the fridge
is it safe to eat leftovers after four days
made {food} tonight and it turned out great
i burned the toast again
what goes well with salmon?
need a good soup recipe for a cold day
how do i keep avocados from browning
what's a substitute for buttermilk
snack ideas that aren't chips?
i'm craving something sweet
trying to eat less sugar this month
drinking {drink} and watching the {weather}
back to back meetings all day
my inbox is a disaster
i have so many emails to answer
the presentation went fine, phew
need to prep for tomorrow's meeting
help me write a polite email declining a meeting
how do i say no to extra work nicely
can you summarize what i have to do today
working from home {day}
the wifi at work is terrible today
lunch meeting ran long
i need to focus, hold my reminders for an hour
draft a quick thank you note to a coworker
how do i write a good out of office message
how do i take a screenshot on a mac
my phone storage is full again
how do i clear my browser cache
what's a good password manager
how do i turn off notifications at night
my bluetooth keeps disconnecting
remind me to update my phone tonight
how do i share my location with someone
the tv remote stopped working
should i get a new laptop or wait
went for a {num} minute run
did yoga this morning
skipped the gym again
what's a good stretch for tight hamstrings
i should drink more water
remind me to stretch every hour
is it bad to work out when sore
knee feels a little weird after the run
feeling stronger lately
recommend a podcast for a long drive
what's a good movie for a rainy night
finished my book, need a new one
any good board games for four people?
watching a documentary about octopuses
i can't stop listening to this one song
what should i watch tonight?
binge watched way too much tv this weekend
recommend a funny audiobook
want to learn to play guitar someday
{name} says hi
had coffee with {name}, it was nice
remind me to text {name} back
{name} is so funny lol
haven't heard from {name} in a while
{name} sent me the funniest meme
should i call {name} tonight?
{name} recommended a show, forgot the name
need to thank {name} for the help
ran into {name} at {place}
{name} still hasn't returned my charger
remind me to ask {name} about the weekend plans
{name} wants to try the new taco place
{name} just sent a voice memo that's 9 minutes long
the house is a mess
finally cleaned the whole kitchen
need to {chore} but zero motivation
do i need to {chore} today?
the plants look sad
bought a new lamp for the living room
how do i get rid of fruit flies
best way to clean a cast iron pan?
how often should i wash my sheets
the smoke alarm is chirping
what's the best way to remove a wine stain
light bulb in the hallway burned out
how do i unclog a drain without chemicals
laundry day, send help
the dishwasher smells funky
i need to budget better
remind me to check my bank account {day}
is it worth getting a credit card with travel points
i should cancel some subscriptions
split 84 dollars between three people
payday can't come soon enough
what's a 20 percent tip on 65 dollars
how long does it take to get to the airport from downtown
traffic looks bad on the highway
should i leave now to make it by {time}?
gas prices are crazy
need to get a car wash
my bike tire is flat again
train is delayed {num} minutes
forgot my headphones on the bus
i want to plan a weekend trip somewhere
what's a good place for a day hike nearby
why is the sky blue?
how far away is the moon
how many bones are in the human body
what's the tallest mountain in the world
who invented the light bulb
how do bees make honey
what's the difference between a virus and bacteria
how long do cats usually live
what's the population of canada
explain compound interest like i'm five
how do noise cancelling headphones work
what's the best way to learn a language
how do i get better at remembering names
is a tomato a fruit?
what's a good houseplant that's hard to kill
how do i fold a fitted sheet
what's the etiquette for a baby shower gift
how long should a cover letter be
how do i politely end a phone call
what's the healthiest kind of bread
ok i'm heading out
back home now
just woke up
going to bed, night
on my way to {place}
at {place} now, it's packed
i'm running {num} minutes late
stuck in a meeting, talk later
finally done for the day
lunch break, finally
thought i left the stove on, false alarm
i'm at a coffee shop working for a bit
the coffee here is amazing
forgot my water bottle at home
can't find my sunglasses anywhere
i keep losing my chapstick
what should i name my new plant
someone brought donuts, day made
a bird flew into the window, it's ok though
saw the cutest dog on my walk
the sunset tonight was unreal
there's a weird noise coming from the fridge
just paid a bunch of bills, feels good
signed up for a pottery class, wish me luck
i should call home more often
thinking about getting bangs, bad idea?
what should i wear to a casual wedding
how early should i get to a concert
i need new running shoes
looking for a good birthday card message
what's a nice thing to say in a sympathy card
help me plan a chill saturday
i want to start journaling
give me a motivational quote
what's a good stretch for my neck
is it too late to drink coffee at {time}?
how long should i steep green tea
i drank {drink} way too fast
how do i get my sleep schedule back on track
is {num} glasses of water a day enough?
the cafe changed their menu and i'm upset
need a haircut badly
i think my plant has bugs
what's the best time of day to water a garden
the mail came super late today
ordered way too much takeout this week
can you remind me what day it is lol
i can't believe it's already {month}
this week flew by
my hands are freezing
the dentist always makes me nervous
i really need to get my eyes checked
what does a blinking check engine light mean
how often should tires be rotated
how do you know when it's time to replace a mattress
my allergies are acting up today
i keep sneezing, pollen must be high
what's a good gift for someone who has everything
gift ideas for a coworker under 20 dollars
how do i wrap a present neatly
i need to send a thank you card
what's the best way to store winter clothes
remind me to back up my laptop
how do i make my phone screen less bright at night
what's the quickest way to defrost chicken
what's a good word for when you're happy and sad at the same time
why do onions make you cry
how many calories are in an avocado
what's the difference between baking soda and baking powder
i forgot what i was going to ask
hold on, someone's at the door
ok back
that took forever
can you say that shorter
explain it like i'm not a tech person
give me three options
the second one sounds better
let's go with that
actually, scratch that
do that again but friendlier
write it a bit more casual
make a list of pros and cons for me
i can't decide what to do tonight
what's something productive i can do in 15 minutes
i have an hour to kill, ideas?
i want to be more organized this month
how do people stay motivated to work out
what's a good morning routine
i keep procrastinating, help
turn on do not disturb until {time}
what's the news today
anything interesting happening in the world?
remind me to call the bank {day}
did the package get delivered?
i owe someone a birthday text, remind me tonight
how long is a layover supposed to be
what should i pack for a weekend away
give me a checklist for leaving the house for a week
the kettle is broken, guess it's tea from the microwave
my coffee got cold while i was on a call
the cat next door is sitting on my car again
my feet hurt from these new shoes
it's been a weird week
everyone at the store was so nice today
i finally organized my closet
found twenty dollars in an old jacket
my neighbor's music is stuck in my head
is it normal to be this tired in winter
the daylight savings change is wrecking me
can you keep a note that i'm trying to read more
what's the weather going to be like this weekend
it's snowing sideways out there
i think i'm coming down with something
my throat is a little scratchy
ugh, i forgot my lunch at home
the vending machine ate my dollar
is it rude to leave a party early
how do you make small talk with strangers
what should i bring to a potluck
how do i politely decline an invite
i'm so ready for spring
i miss summer already
the leaves are finally changing
pumpkin spice everything again lol
what are some good fall activities
what should i cook for a cozy sunday
let's plan meals for the week
i need a new hobby
what's a good beginner hike
how do i start running without hating it
stretching before bed actually helps
my posture is terrible today
i've been staring at screens all day
going offline for a bit
back, what did i miss
""".strip().split("\n")
MESSAGE_TEMPLATES = [t.strip() for t in MESSAGE_TEMPLATES if t.strip()]

# Routine to-dos (title | description | project). Deliberately generic.
GENERIC_TASKS = [tuple((f.strip() or None) for f in line.split("|")) for line in """
Buy printer ink | | errands
Replace the air filter | | home
Clean out the fridge | | home
Back up phone photos | | digital
Unsubscribe from junk emails | | digital
Take donations to the thrift store | two bags in the hall closet | errands
Return library books | | errands
Descale the coffee maker | | home
Sharpen the kitchen knives | | home
Buy a birthday card | | errands
Water the succulents | | home
Organize the junk drawer | | home
Update phone apps | | digital
Fix the squeaky door hinge | | home
Replace smoke detector batteries | | home
Vacuum the car | | errands
Sort through old mail | | home
Shred old documents | | home
Check tire pressure | | errands
Buy a new shower curtain liner | | errands
Clean the oven | | home
Wash the windows | | home
Buy stamps | | errands
Mail the rebate form | | errands
Cancel the unused streaming trial | | digital
Meal prep for the week | | home
Buy more coffee beans | | errands
Write thank you notes | | personal
Empty the shredder | | home
Buy light bulbs | | errands
Deep clean the bathroom | | home
Reorganize the pantry | | home
Look up weekend hiking trails | | personal
Research cheaper phone plans | | digital
Set up automatic bill pay | | digital
Clean the laptop keyboard | | digital
Buy a new toothbrush | | errands
Rotate the mattress | | home
Wash the duvet cover | | home
Get a spare phone charger | | errands
Recycle old electronics | | errands
Back up laptop to the external drive | | digital
Clear out email inbox | | digital
Organize photos from the summer | | digital
Buy new socks | | errands
Hem the gray pants | | personal
Sew the button back on my coat | | personal
Polish shoes | | personal
Replace the kitchen sponge | | home
Buy a new plant pot | | errands
Repot the snake plant | | home
Plan meals for next week | | home
Buy ingredients for soup | | errands
Call internet provider about the bill | | digital
Check the credit card statement | | finance
Check the warranty on the blender | | home
Book a massage | | personal
Order more printer paper | | errands
Defrost the freezer | | home
Label the spice jars | | home
Oil the wooden cutting board | | home
Change the bedsheets | | home
Take out the compost | | home
Clean the microwave | | home
Buy bulbs for the porch light | | errands
Test the carbon monoxide detector | | home
Wipe down the baseboards | | home
Declutter the closet | | home
Donate old books | | errands
Sell the old bookshelf online | | home
Get quotes for window blinds | | home
Buy a new doormat | | errands
Buy a sturdier umbrella | | errands
Replace the water filter | | home
Fix the wobbly chair | | home
Tighten the cabinet handles | | home
Clean the shower drain | | home
Buy AA batteries | | errands
Untangle and label the cables | | home
Finish the library book | | personal
Start the next online course module | | personal
Practice guitar for 20 minutes | | personal
Go for a long walk | | personal
Stretch before bed | | personal
Price out new headphones | | personal
Look into a standing desk | | personal
Make a photo book | | personal
Print photos for the fridge | | personal
Frame the concert poster | | home
Hang the mirror in the hallway | | home
Sweep the balcony | | home
Buy snacks for the weekend | | errands
Get the watch battery replaced | | errands
Dust the bookshelves | | home
Write the grocery list | | home
Rinse and recycle the glass jars | | home
Clean the inside of the car windows | | errands
Update the budget spreadsheet | | finance
Review monthly subscriptions | | finance
Download bank statements for the year | | finance
Return the borrowed baking dish | | errands
Find a recipe for the slow cooker | | home
Try a new podcast | | personal
Set up a password for the guest wifi network | | digital
Delete old screenshots | | digital
Buy wrapping paper | | errands
Organize the medicine cabinet | | home
Clean the range hood filter | | home
""".strip().split("\n")]

# Routine events: title | location | duration minutes | candidate start times
GENERIC_EVENTS = [[f.strip() for f in line.split("|")] for line in """
Coffee catch-up | Bean There Cafe | 45 | 08:30,10:00,15:00
Grocery pickup | FreshMart on 3rd | 15 | 11:00,17:30,18:00
Farmers market | Riverside Park | 90 | 09:00,10:00
Yoga class | Lotus Studio | 60 | 07:00,18:00,19:00
Movie night | home | 150 | 19:30,20:00
Call with the bank | phone | 30 | 10:30,14:00
Car wash | Sparkle Car Wash | 30 | 12:00,16:00
Focus block | | 120 | 09:00,13:00,14:00
Lunch with a friend | Green Bowl | 60 | 12:00,12:30
Webinar: personal finance basics | Zoom | 60 | 12:00,18:00
Trivia night | The Crooked Pint | 120 | 19:00,19:30
Pottery class | Clay Space | 120 | 18:30,10:00
Walk in the park | Laurel Park | 45 | 07:30,17:30
Package delivery window | home | 240 | 09:00,13:00
Furniture delivery | home | 180 | 08:00,12:00
Internet technician visit | home | 120 | 08:00,13:00
Meal prep | home | 90 | 16:00,17:00
Weekly planning | | 30 | 08:00,17:00
Bike ride | River Trail | 90 | 08:00,16:30
Lap swim | Community Pool | 45 | 06:30,12:15
Spin class | CycleHub | 45 | 06:00,18:15
Game night | home | 180 | 19:00
Brunch | Sunny Side Diner | 90 | 10:00,11:00
Museum afternoon | City Art Museum | 150 | 13:00,14:00
Day hike | Forest Park trailhead | 180 | 08:00,09:00
Neighborhood cleanup | Elm Street Park | 120 | 09:00,10:00
Street fair | Main Street | 180 | 11:00,13:00
Mindfulness session | Calm Room app | 20 | 07:00,21:00
Painting workshop | Arts Center | 120 | 10:00,18:00
Charity 5K | Waterfront Park | 90 | 08:00
Recycling drop-off | City Recycling Center | 30 | 10:00,15:00
Cooking class: dumplings | Kitchen Collective | 150 | 18:00
Comedy show | Giggle Box Club | 120 | 20:00,21:00
Language exchange meetup | Cafe Lingua | 90 | 18:30
Closet cleanout | home | 120 | 10:00,14:00
Plant swap | Greenhouse Co-op | 90 | 11:00
Library author talk | Central Library | 60 | 18:00
Open mic night | The Velvet Room | 120 | 20:00
Phone call with an old friend | phone | 45 | 19:00,20:30
Budget review | home | 45 | 19:00,20:00
""".strip().split("\n")]


# --------------------------------------------------------------------------------------
# Parsing facts.txt
# --------------------------------------------------------------------------------------
def fail(msg):
    raise SystemExit("QUALITY CHECK FAILED: " + msg)


def to_iso(date_str, minutes):
    start = dt.datetime.strptime(date_str.strip(), "%Y-%m-%d %H:%M")
    end = start + dt.timedelta(minutes=int(minutes))
    return start.strftime("%Y-%m-%dT%H:%M:00Z"), end.strftime("%Y-%m-%dT%H:%M:00Z")


def parse_facts(path):
    users = []
    cur = None
    last_doc = None
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    for ln, raw in enumerate(lines, 1):
        line = raw.strip()
        where = f"{os.path.basename(path)}:{ln}"
        if not line or line.startswith("#"):
            continue
        if line.startswith("@user "):
            cur = {"id": line[6:].strip(), "docs": [], "questions": [], "names": [],
                   "recurring": [], "labels": {}}
            users.append(cur)
            last_doc = None
            continue
        if cur is None:
            fail(f"{where}: line before first @user")
        code, rest = line[0], line[1:]
        label = None
        if rest.startswith("["):
            j = rest.index("]")
            label, rest = rest[1:j], rest[j + 1:]
        rest = rest.strip()
        fields = [f.strip() for f in rest.split("|")]
        if code == "N":
            cur["names"] = [x.strip() for x in rest.split(",") if x.strip()]
            continue
        if code == "R":
            if len(fields) != 6:
                fail(f"{where}: R needs 6 fields")
            title, loc, days, hhmm, mins, count = fields
            cur["recurring"].append((title, loc or None, days.split(","), hhmm, int(mins), int(count)))
            continue
        if code == "?":
            if len(fields) not in (2, 3):
                fail(f"{where}: question needs 'category | text [| +label ...]'")
            if last_doc is None:
                fail(f"{where}: question without a preceding document")
            extra = fields[2].split() if len(fields) == 3 else []
            cur["questions"].append({"q": fields[1], "category": fields[0], "ev": [last_doc],
                                     "extra": [e.lstrip("+") for e in extra], "where": where})
            continue
        if code == "M":
            doc = {"kind": "memory", "text": rest}
        elif code == "C":
            doc = {"kind": "message", "text": rest}
        elif code == "T":
            if len(fields) != 3:
                fail(f"{where}: T needs 'title | description | project'")
            doc = {"kind": "task", "title": fields[0], "description": fields[1] or None,
                   "project": fields[2] or None}
        elif code == "E":
            if len(fields) != 5:
                fail(f"{where}: E needs 'title | description | location | YYYY-MM-DD HH:MM | minutes'")
            s, e = to_iso(fields[3], fields[4])
            doc = {"kind": "event", "title": fields[0], "description": fields[1] or None,
                   "location": fields[2] or None, "startAt": s, "endAt": e}
        else:
            fail(f"{where}: unknown line code {code!r}")
        doc["hand"] = True
        doc["where"] = where
        cur["docs"].append(doc)
        last_doc = doc
        if label:
            if label in cur["labels"]:
                fail(f"{where}: duplicate label {label}")
            cur["labels"][label] = doc
    for u in users:
        for q in u["questions"]:
            for lab in q["extra"]:
                if lab not in u["labels"]:
                    fail(f"{q['where']}: unknown evidence label +{lab}")
                q["ev"].append(u["labels"][lab])
    return users


# --------------------------------------------------------------------------------------
# Filler generation
# --------------------------------------------------------------------------------------
def fill_template(tpl, rng, names):
    used = {}

    def repl(m):
        slot = m.group(1)
        if slot == "name":
            return rng.choice(names)
        base = slot[:-1] if slot.endswith("2") and slot[:-1] in SLOTS else slot
        pool = SLOTS[base]
        choices = [v for v in pool if v != used.get(base)] if base != slot else pool
        val = rng.choice(choices)
        used.setdefault(base, val)
        return val

    text = re.sub(r"\{(\w+)\}", repl, tpl)
    r = rng.random()
    if r < 0.12:
        text = text[0].upper() + text[1:]
    elif r < 0.17:
        text = text.rstrip("?!.")
    return text


def recurring_events(spec):
    title, loc, days, hhmm, mins, count = spec
    wanted = [WEEKDAYS.index(d.strip()) for d in days]
    out, day = [], WINDOW_START
    while len(out) < count and day <= WINDOW_END:
        if day.weekday() in wanted:
            s, e = to_iso(f"{day.isoformat()} {hhmm}", mins)
            out.append({"kind": "event", "title": title, "description": None, "location": loc,
                        "startAt": s, "endAt": e, "hand": False})
        day += dt.timedelta(days=1)
    return out


def build_user(u, rng):
    docs = list(u["docs"])
    n_mem = sum(d["kind"] == "memory" for d in docs)
    total = round(n_mem / MEMORY_SHARE)
    want_tasks = round(total * TASK_SHARE)
    want_events = round(total * EVENT_SHARE)

    # tasks
    have_titles = {d["title"].lower() for d in docs if d["kind"] == "task"}
    n_tasks = sum(d["kind"] == "task" for d in docs)
    pool = [t for t in GENERIC_TASKS if t[0].lower() not in have_titles]
    for title, desc, proj in rng.sample(pool, max(0, want_tasks - n_tasks)):
        if rng.random() < 0.5:
            proj = None
        docs.append({"kind": "task", "title": title, "description": desc, "project": proj, "hand": False})

    # events: recurring first, then routine one-offs on random days
    for spec in u["recurring"]:
        docs.extend(recurring_events(spec))
    n_events = sum(d["kind"] == "event" for d in docs)
    span = (WINDOW_END - WINDOW_START).days
    for title, loc, mins, times in rng.sample(GENERIC_EVENTS, max(0, want_events - n_events)):
        day = WINDOW_START + dt.timedelta(days=rng.randrange(span))
        s, e = to_iso(f"{day.isoformat()} {rng.choice(times.split(','))}", mins)
        docs.append({"kind": "event", "title": title, "description": None, "location": loc or None,
                     "startAt": s, "endAt": e, "hand": False})

    # chat messages
    n_msgs = total - sum(d["kind"] != "message" for d in docs) - sum(d["kind"] == "message" for d in docs)
    seen = {d["text"].lower() for d in docs if d["kind"] == "message"}
    seen |= {q["q"].lower() for q in u["questions"]}
    order = MESSAGE_TEMPLATES[:]
    rng.shuffle(order)
    i = 0
    guard = 0
    while n_msgs > 0:
        guard += 1
        if guard > 100000:
            fail(f"{u['id']}: could not generate enough distinct filler messages")
        tpl = order[i % len(order)] if i < len(order) else rng.choice(MESSAGE_TEMPLATES)
        i += 1
        text = fill_template(tpl, rng, u["names"])
        if text.lower() in seen:
            continue
        seen.add(text.lower())
        docs.append({"kind": "message", "text": text, "hand": False, "template": tpl})
        n_msgs -= 1

    # keys: numbered after a shuffle so numbering reveals nothing about evidence
    short = u["id"].split("_")[-1]
    for kind in KINDS:
        group = [d for d in docs if d["kind"] == kind]
        rng.shuffle(group)
        for n, d in enumerate(group, 1):
            d["key"] = f"{short}_{KIND_LETTER[kind]}{n:03d}"
    docs.sort(key=lambda d: (KINDS.index(d["kind"]), d["key"]))
    return docs


def public_doc(d):
    if d["kind"] in ("memory", "message"):
        return {"key": d["key"], "kind": d["kind"], "text": d["text"]}
    if d["kind"] == "task":
        return {"key": d["key"], "kind": "task", "title": d["title"],
                "description": d["description"], "project": d["project"]}
    return {"key": d["key"], "kind": "event", "title": d["title"], "description": d["description"],
            "location": d["location"], "startAt": d["startAt"], "endAt": d["endAt"]}


def doc_text(d):
    if d["kind"] in ("memory", "message"):
        return d["text"]
    parts = [d.get("title"), d.get("description"), d.get("project"), d.get("location")]
    return " ".join(p for p in parts if p)


# --------------------------------------------------------------------------------------
# Informational lexical baseline (BM25) — shows that categories behave as intended.
# --------------------------------------------------------------------------------------
STOP = set("""a an the i me my mine we our us you your is are was were be been am do does did of to in on at for
with and or but if so it its it's this that what whats what's when whens when's where wheres where's who whos who's
how which again is there any have has had get got can could should would will just about from up out as by not no
yes please im i'm""".split())


def tokens(s):
    return [t for t in re.findall(r"[a-z0-9]+", s.lower()) if t not in STOP]


def bm25_ranks(docs, questions, k1=1.2, b=0.75):
    toks = [tokens(doc_text(d)) for d in docs]
    avg = sum(map(len, toks)) / max(1, len(toks))
    dfc = Counter(t for ts in toks for t in set(ts))
    n = len(docs)
    tfs = [Counter(ts) for ts in toks]
    out = []
    for q in questions:
        qt = tokens(q["q"])
        scores = []
        for i, tf in enumerate(tfs):
            s = 0.0
            for t in qt:
                if t in tf:
                    idf = math.log(1 + (n - dfc[t] + 0.5) / (dfc[t] + 0.5))
                    s += idf * tf[t] * (k1 + 1) / (tf[t] + k1 * (1 - b + b * len(toks[i]) / avg))
            scores.append((s, i))
        scores.sort(key=lambda x: (-x[0], x[1]))
        ev = {id(d) for d in q["ev"]}
        rank = next((r for r, (s, i) in enumerate(scores, 1) if id(docs[i]) in ev and s > 0), None)
        out.append(rank)
    return out


# --------------------------------------------------------------------------------------
def main():
    rng = random.Random(SEED)
    users = parse_facts(FACTS)
    out_users = []
    all_keys = set()
    problems = []

    def check(cond, msg):
        if not cond:
            problems.append(msg)

    check(6 <= len(users) <= 8, f"need 6-8 users, got {len(users)}")
    kind_total = Counter()
    cat_total = Counter()
    ev_kind = Counter()
    n_questions = 0
    hand_messages = set()
    all_message_texts = set()
    used_templates = set()
    ranks_by_cat = defaultdict(list)

    for u in users:
        uid = u["id"]
        check(re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid) is not None, f"bad user id {uid}")
        check(len(u["names"]) >= 3, f"{uid}: N line needs at least 3 names")
        docs = build_user(u, rng)
        keys = [d["key"] for d in docs]
        for k in keys:
            check(k not in all_keys, f"duplicate key {k}")
            all_keys.add(k)
        kinds = Counter(d["kind"] for d in docs)
        kind_total.update(kinds)
        total = len(docs)
        check(total >= 250, f"{uid}: only {total} documents (< 250)")
        share = {k: kinds[k] / total for k in KINDS}
        check(0.15 <= share["memory"] <= 0.25, f"{uid}: memory share {share['memory']:.3f}")
        check(0.10 <= share["task"] <= 0.15, f"{uid}: task share {share['task']:.3f}")
        check(0.10 <= share["event"] <= 0.15, f"{uid}: event share {share['event']:.3f}")
        check(share["message"] >= 0.45, f"{uid}: message share {share['message']:.3f}")

        # text lengths and duplicates
        for d in docs:
            w = d.get("where", "filler")
            if d["kind"] == "memory":
                n = len(d["text"].split())
                check(5 <= n <= 40, f"{uid} {w}: memory has {n} words: {d['text']}")
            elif d["kind"] == "message":
                n = len(d["text"].split())
                check(2 <= n <= 50, f"{uid} {w}: message has {n} words: {d['text']}")
                all_message_texts.add(d["text"].lower())
                if d["hand"]:
                    hand_messages.add(d["text"].lower())
                else:
                    used_templates.add(d["template"])
            elif d["kind"] == "task":
                n = len(d["title"].split())
                check(2 <= n <= 10, f"{uid} {w}: task title has {n} words: {d['title']}")
            else:
                check(d["startAt"] < d["endAt"], f"{uid} {w}: event ends before it starts")
        hand_texts = Counter(doc_text(d).lower() for d in docs if d["hand"])
        for t, c in hand_texts.items():
            check(c == 1, f"{uid}: hand-written document repeated: {t}")
        filler_overlap = {doc_text(d).lower() for d in docs if not d["hand"]} & set(hand_texts)
        check(not filler_overlap, f"{uid}: filler duplicates a hand-written doc: {sorted(filler_overlap)[:3]}")

        # questions
        texts_here = {doc_text(d).strip().lower() for d in docs}
        qtexts = Counter(q["q"].strip().lower() for q in u["questions"])
        for t, c in qtexts.items():
            check(c == 1, f"{uid}: duplicate question text: {t}")
        out_q = []
        user_keys = set(keys)
        for q in u["questions"]:
            check(q["category"] in CATEGORIES, f"{q['where']}: unknown category {q['category']}")
            check(q["q"].strip().lower() not in texts_here, f"{q['where']}: question identical to a document")
            ev_keys = [d["key"] for d in q["ev"]]
            check(1 <= len(ev_keys) <= 2, f"{q['where']}: needs 1-2 evidence keys")
            check(len(set(ev_keys)) == len(ev_keys), f"{q['where']}: repeated evidence key")
            for k in ev_keys:
                check(k in user_keys, f"{q['where']}: evidence {k} not a document of {uid}")
            for d in q["ev"]:
                check(d["hand"], f"{q['where']}: evidence must be hand-written")
                ev_kind[d["kind"]] += 1
            cat_total[q["category"]] += 1
            out_q.append({"q": q["q"], "evidence": ev_keys, "category": q["category"]})
        n_questions += len(out_q)
        for q, r in zip(u["questions"], bm25_ranks(docs, u["questions"])):
            ranks_by_cat[q["category"]].append(r)

        out_users.append({"id": uid, "documents": [public_doc(d) for d in docs], "questions": out_q,
                          "_stats": (kinds, len(out_q))})

    # global checks
    n_docs = sum(kind_total.values())
    check(2500 <= n_docs <= 4000, f"total documents {n_docs} not in 2500-4000")
    check(n_questions >= 320, f"only {n_questions} questions (< 320)")
    for cat in CATEGORIES:
        check(cat_total[cat] >= MIN_PER_CATEGORY[cat], f"category {cat}: {cat_total[cat]} < {MIN_PER_CATEGORY[cat]}")
    n_q_task_event = sum(1 for u in users for q in u["questions"] if any(d["kind"] in ("task", "event") for d in q["ev"]))
    n_q_message = sum(1 for u in users for q in u["questions"] if any(d["kind"] == "message" for d in q["ev"]))
    check(n_q_task_event >= 60, f"only {n_q_task_event} questions with task/event evidence (< 60)")
    check(n_q_message >= 12, f"only {n_q_message} questions with message evidence (< 12)")
    n_sentences = len(set(MESSAGE_TEMPLATES)) + len(hand_messages)
    check(n_sentences >= 400, f"only {n_sentences} distinct message templates/sentences (< 400)")
    check(len(all_message_texts) >= 400, f"only {len(all_message_texts)} distinct message texts")

    if problems:
        for p in problems:
            print("QUALITY CHECK FAILED:", p, file=sys.stderr)
        raise SystemExit(f"{len(problems)} quality check(s) failed; dataset.json not written")

    stats = [u.pop("_stats") for u in out_users]
    with open(OUT, "w", encoding="utf-8") as fh:
        json.dump({"version": 1, "users": out_users}, fh, ensure_ascii=False, indent=1)
        fh.write("\n")

    # summary
    print(f"wrote {os.path.relpath(OUT)}")
    print(f"users: {len(out_users)}   documents: {n_docs}   questions: {n_questions}")
    print("documents per kind: " + ", ".join(f"{k}={kind_total[k]} ({kind_total[k] / n_docs:.1%})" for k in KINDS))
    for u, (kinds, nq) in zip(out_users, stats):
        print(f"  {u['id']}: " + ", ".join(f"{k}={kinds[k]}" for k in KINDS) + f", total={sum(kinds.values())}, questions={nq}")
    print("questions per category: " + ", ".join(f"{c}={cat_total[c]}" for c in CATEGORIES))
    print(f"questions with task/event evidence: {n_q_task_event}; with message evidence: {n_q_message}; "
          f"with 2 evidence keys: {sum(len(q['evidence']) == 2 for u in out_users for q in u['questions'])}")
    print(f"evidence documents by kind: " + ", ".join(f"{k}={ev_kind[k]}" for k in KINDS))
    print(f"message templates: {len(set(MESSAGE_TEMPLATES))} (used {len(used_templates)}), hand-written messages: "
          f"{len(hand_messages)}, distinct message texts: {len(all_message_texts)}")
    print("BM25 baseline (info only): category  hit@1  hit@5  MRR")
    for c in CATEGORIES:
        rs = ranks_by_cat[c]
        h1 = sum(1 for r in rs if r == 1) / len(rs)
        h5 = sum(1 for r in rs if r and r <= 5) / len(rs)
        mrr = sum(1 / r for r in rs if r) / len(rs)
        print(f"  {c:<11} {h1:5.2f}  {h5:5.2f}  {mrr:5.2f}")


if __name__ == "__main__":
    main()
