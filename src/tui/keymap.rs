//! Every key of the workbench, in one table: the help overlay is generated from it.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// The panes are listed in the registry of `panes`; the keymap scopes bindings by them.
pub use super::panes::PaneId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Works in every pane.
    Global,
    Pane(PaneId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    FocusNext,
    FocusPrev,
    Focus(PaneId),
    Help,
    Quit,
    Up,
    Down,
    Left,
    Right,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Enter,
    Back,
    NewQuery,
    FollowUp,
    Cancel,
    UseReplay,
    ToggleView,
    ToggleThinking,
    ToggleEscapes,
    Search,
    NextMatch,
    WriteBody,
    ExpandResult,
    ToggleWire,
    BreakBeforeLlm,
    BreakBeforeLlmAll,
    BreakBeforeTool,
    BreakAfterStep,
    BreakOnError,
    Step,
    Continue,
    EditRequest,
    OpenDefinition,
    Zoom,
    Jobs,
    Fork,
    AbCompare,
    ReopenCompare,
    MarkDiff,
    Diff,
}

pub struct Binding {
    pub keys: &'static [(KeyCode, KeyModifiers)],
    pub label: &'static str,
    pub scope: Scope,
    pub action: Action,
    pub help: &'static str,
}

const NONE: KeyModifiers = KeyModifiers::NONE;
const CTRL: KeyModifiers = KeyModifiers::CONTROL;

macro_rules! bind {
    ($scope:expr, $label:expr, [$($key:expr),+], $action:expr, $help:expr) => {
        Binding {
            keys: &[$(($key, NONE)),+],
            label: $label,
            scope: $scope,
            action: $action,
            help: $help,
        }
    };
}

use Action as A;
use KeyCode as K;
use PaneId as P;
use Scope::{Global as G, Pane};

/// Pane bindings come first: a pane may give a key its own meaning.
pub static KEYMAP: &[Binding] = &[
    bind!(
        Pane(P::Experts),
        "Enter",
        [K::Enter],
        A::Enter,
        "select the Expert or run; its runs show in the other panes"
    ),
    bind!(
        Pane(P::Experts),
        "i",
        [K::Char('i')],
        A::NewQuery,
        "start a run of the selected Expert"
    ),
    bind!(
        Pane(P::Experts),
        "b",
        [K::Char('b')],
        A::BreakBeforeLlm,
        "breakpoint before each model call of this Expert (toggle)"
    ),
    bind!(
        Pane(P::Experts),
        "B",
        [K::Char('B')],
        A::BreakBeforeLlmAll,
        "breakpoint before each model call of every Expert (toggle)"
    ),
    bind!(
        Pane(P::Experts),
        "t",
        [K::Char('t')],
        A::BreakBeforeTool,
        "breakpoint before each tool call of this Expert (toggle)"
    ),
    bind!(
        Pane(P::Experts),
        "a",
        [K::Char('a')],
        A::BreakAfterStep,
        "breakpoint after each step of this Expert (toggle)"
    ),
    bind!(
        Pane(P::Experts),
        "e",
        [K::Char('e')],
        A::BreakOnError,
        "breakpoint on each error of this Expert (toggle)"
    ),
    bind!(
        Pane(P::Prompt),
        "v",
        [K::Char('v')],
        A::ToggleView,
        "toggle raw body / conversation"
    ),
    bind!(
        Pane(P::Prompt),
        "t",
        [K::Char('t')],
        A::ToggleThinking,
        "fold or unfold thinking"
    ),
    bind!(
        Pane(P::Prompt),
        "u",
        [K::Char('u')],
        A::ToggleEscapes,
        "raw view: string values unescaped (\\n as line breaks) or as sent"
    ),
    bind!(
        Pane(P::Prompt),
        "/",
        [K::Char('/')],
        A::Search,
        "search the whole body"
    ),
    bind!(
        Pane(P::Prompt),
        "n",
        [K::Char('n')],
        A::NextMatch,
        "next match"
    ),
    bind!(
        Pane(P::Prompt),
        "w",
        [K::Char('w')],
        A::WriteBody,
        "write the exact request body to a file"
    ),
    bind!(
        Pane(P::Prompt),
        "h/l ←/→",
        [K::Char('h'), K::Left, K::Char('l'), K::Right],
        A::Left,
        "previous / next step"
    ),
    bind!(
        Pane(P::ToolCalls),
        "Enter",
        [K::Enter],
        A::Enter,
        "expand a call; on a delegate, select its run"
    ),
    bind!(
        Pane(P::ToolCalls),
        "l/h →/←",
        [K::Char('l'), K::Right, K::Char('h'), K::Left],
        A::Left,
        "expand / fold the selected call"
    ),
    bind!(
        Pane(P::ToolCalls),
        "b",
        [K::Char('b')],
        A::BreakBeforeTool,
        "breakpoint before each call of this tool (toggle)"
    ),
    bind!(
        Pane(P::ToolCalls),
        "e",
        [K::Char('e')],
        A::ExpandResult,
        "unfold a large result"
    ),
    bind!(
        Pane(P::ToolCalls),
        "w",
        [K::Char('w')],
        A::ToggleWire,
        "wire of the selected call: its MCP frames raw, then pretty, then off (PgUp/PgDn scroll)"
    ),
    bind!(
        Pane(P::Timeline),
        "Enter",
        [K::Enter],
        A::Enter,
        "show the state at this checkpoint"
    ),
    bind!(
        Pane(P::Timeline),
        "Esc",
        [K::Esc],
        A::Back,
        "back to the live state"
    ),
    bind!(
        Pane(P::Timeline),
        "F",
        [K::Char('F')],
        A::Fork,
        "fork a new run from this checkpoint, under the definitions now in force"
    ),
    bind!(
        Pane(P::Timeline),
        "A",
        [K::Char('A')],
        A::AbCompare,
        "compare two forks of this checkpoint side by side (A/B), B with another model or instruction"
    ),
    bind!(
        Pane(P::Timeline),
        "C",
        [K::Char('C')],
        A::ReopenCompare,
        "reopen the last A/B comparison"
    ),
    bind!(
        Pane(P::Timeline),
        "m",
        [K::Char('m')],
        A::MarkDiff,
        "mark this checkpoint for a diff"
    ),
    bind!(
        Pane(P::Timeline),
        "d",
        [K::Char('d')],
        A::Diff,
        "diff the marked (or previous) checkpoint with this one"
    ),
    bind!(G, "Tab", [K::Tab], A::FocusNext, "next pane"),
    bind!(G, "S-Tab", [K::BackTab], A::FocusPrev, "previous pane"),
    bind!(G, "1", [K::Char('1')], A::Focus(P::Experts), "Experts pane"),
    bind!(G, "2", [K::Char('2')], A::Focus(P::Prompt), "Prompt pane"),
    bind!(
        G,
        "3",
        [K::Char('3')],
        A::Focus(P::ToolCalls),
        "Tool calls pane"
    ),
    bind!(
        G,
        "4",
        [K::Char('4')],
        A::Focus(P::Timeline),
        "Timeline pane"
    ),
    bind!(G, "↑/k", [K::Up, K::Char('k')], A::Up, "move up"),
    bind!(G, "↓/j", [K::Down, K::Char('j')], A::Down, "move down"),
    bind!(
        G,
        "←/h",
        [K::Left, K::Char('h')],
        A::Left,
        "collapse / left"
    ),
    bind!(
        G,
        "→/l",
        [K::Right, K::Char('l')],
        A::Right,
        "expand / right"
    ),
    bind!(G, "PgUp", [K::PageUp], A::PageUp, "page up"),
    bind!(G, "PgDn", [K::PageDown], A::PageDown, "page down"),
    bind!(G, "g", [K::Char('g'), K::Home], A::Top, "top"),
    bind!(G, "G", [K::Char('G'), K::End], A::Bottom, "bottom"),
    bind!(G, "Enter", [K::Enter], A::Enter, "select / expand"),
    bind!(G, "Esc", [K::Esc], A::Back, "close / back to live"),
    bind!(
        G,
        "i",
        [K::Char('i')],
        A::NewQuery,
        "new query for the selected Expert"
    ),
    bind!(
        G,
        "f",
        [K::Char('f')],
        A::FollowUp,
        "follow-up query after the job completed"
    ),
    bind!(
        G,
        "x",
        [K::Char('x')],
        A::Cancel,
        "cancel the running job (its checkpoint is kept)"
    ),
    bind!(
        G,
        "r",
        [K::Char('r')],
        A::UseReplay,
        "use the replay provider (no key, no network)"
    ),
    bind!(
        G,
        "s",
        [K::Char('s')],
        A::Step,
        "step: a paused run goes on to the next pause point"
    ),
    bind!(
        G,
        "c",
        [K::Char('c')],
        A::Continue,
        "continue a paused run to the next breakpoint"
    ),
    bind!(
        G,
        "E",
        [K::Char('E')],
        A::EditRequest,
        "edit the body about to be sent, in $EDITOR (when paused)"
    ),
    bind!(
        G,
        "o",
        [K::Char('o')],
        A::OpenDefinition,
        "open in $EDITOR at its line: the first reload error, the Expert, or a call's skill"
    ),
    bind!(
        G,
        "z",
        [K::Char('z')],
        A::Zoom,
        "zoom the focused pane to the whole screen and back"
    ),
    bind!(
        G,
        "J",
        [K::Char('J')],
        A::Jobs,
        "jobs in the store: show one, follow it while it runs"
    ),
    bind!(G, "?", [K::Char('?')], A::Help, "this help"),
    bind!(
        G,
        "q",
        [K::Char('q')],
        A::Quit,
        "quit (asks first while a run is active)"
    ),
    Binding {
        keys: &[(K::Char('c'), CTRL)],
        label: "C-c",
        scope: G,
        action: A::Quit,
        help: "quit (asks first while a run is active)",
    },
];

/// The action of a key in the focused pane.
pub fn lookup(focus: PaneId, key: KeyEvent) -> Option<Action> {
    // Shift only changes the character (G, ?); the code already carries it. Alt is dropped:
    // Esc typed quickly before a key arrives as Alt+key.
    let mods = key.modifiers - KeyModifiers::SHIFT - KeyModifiers::ALT;
    let matches = |b: &&Binding| b.keys.iter().any(|(c, m)| *c == key.code && *m == mods);
    let pane = KEYMAP
        .iter()
        .filter(|b| b.scope == Scope::Pane(focus))
        .find(matches);
    let binding = pane.or_else(|| KEYMAP.iter().filter(|b| b.scope == G).find(matches))?;
    // One row covers both directions of the step keys and of the expand keys.
    if binding.action == A::Left && matches!(key.code, K::Char('l') | K::Right) {
        return Some(A::Right);
    }
    Some(binding.action)
}

/// The bindings to list for a pane: its own, then the global ones it does not shadow.
pub fn help_for(focus: PaneId) -> Vec<&'static Binding> {
    let own: Vec<&Binding> = KEYMAP
        .iter()
        .filter(|b| b.scope == Scope::Pane(focus))
        .collect();
    let shadowed = |g: &Binding| {
        g.keys
            .iter()
            .all(|k| own.iter().any(|o| o.keys.contains(k)))
    };
    let global = KEYMAP.iter().filter(|b| b.scope == G && !shadowed(b));
    own.iter().copied().chain(global).collect()
}

/// The short hints for the status bar.
pub fn hints(focus: PaneId) -> String {
    // Keys whose help starts alike share one hint: "b/t/a/e breakpoint".
    let mut own: Vec<(String, &str)> = Vec::new();
    for b in KEYMAP.iter().filter(|b| b.scope == Scope::Pane(focus)) {
        let word = first_word(b.help);
        match own.last_mut() {
            Some((labels, last)) if *last == word => {
                labels.push('/');
                labels.push_str(b.label);
            }
            _ => own.push((b.label.to_string(), word)),
        }
    }
    let own: Vec<String> = own
        .into_iter()
        .map(|(labels, word)| format!("{labels} {word}"))
        .collect();
    format!("{}  Tab pane  ? help  q quit", own.join("  "))
}

fn first_word(help: &str) -> &str {
    help.split([' ', ';', ',']).next().unwrap_or(help)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, NONE)
    }

    #[test]
    fn pane_keys_shadow_global_ones() {
        assert_eq!(lookup(P::Prompt, key(K::Char('l'))), Some(A::Right));
        assert_eq!(lookup(P::Prompt, key(K::Char('h'))), Some(A::Left));
        assert_eq!(lookup(P::Experts, key(K::Char('j'))), Some(A::Down));
        assert_eq!(
            lookup(P::Timeline, key(K::Char('3'))),
            Some(A::Focus(P::ToolCalls))
        );
        assert_eq!(
            lookup(
                P::Timeline,
                KeyEvent::new(K::Char('G'), KeyModifiers::SHIFT)
            ),
            Some(A::Bottom)
        );
        assert_eq!(
            lookup(P::Timeline, KeyEvent::new(K::Char('c'), CTRL)),
            Some(A::Quit)
        );
        assert_eq!(lookup(P::Timeline, key(K::Char('Z'))), None);
    }

    #[test]
    fn help_lists_each_key_once() {
        let help = help_for(P::Prompt);
        assert!(help.iter().any(|b| b.action == A::WriteBody));
        assert_eq!(
            help.iter()
                .filter(|b| b.keys.contains(&(K::Enter, NONE)))
                .count(),
            1
        );
    }
}
