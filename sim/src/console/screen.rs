//! A VM's screen: a text console of 100×37 character cells (800×600 pixels with the 8×16 font)
//! showing a Debian getty, shared by every viewer of the VM. It keeps text, not pixels: a few KiB
//! per VM, and pixels are drawn per update in the viewer's pixel format. Each row carries the
//! generation it last changed in, so a viewer sends only rows newer than what it has.

use super::font::{CELL_HEIGHT, CELL_WIDTH, cell_row};
use crate::state::lock;
use std::sync::Mutex;
use tokio::sync::watch;

pub const COLS: usize = 100;
pub const ROWS: usize = 37;
pub const WIDTH: u16 = 800;
pub const HEIGHT: u16 = 600;

/// X11 keysyms the console understands besides printable Latin-1.
pub const KEY_RETURN: u32 = 0xff0d;
pub const KEY_BACKSPACE: u32 = 0xff08;
const KEY_KP_ENTER: u32 = 0xff8d;

/// VGA console colours, 0x00RRGGBB.
pub const BACKGROUND: u32 = 0x0000_0000;
pub const FOREGROUND: u32 = 0x00aa_aaaa;

/// What the getty is asking for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Prompt {
    Login,
    /// Typed characters are not echoed.
    Password,
}

#[derive(Debug)]
struct Console {
    host: String,
    cells: Vec<u8>,
    row_generation: [u64; ROWS],
    generation: u64,
    cursor: (usize, usize),
    prompt: Prompt,
    typed: String,
}

/// Rows to draw: their text, and the cursor column if the cursor is on them.
#[derive(Debug, Clone)]
pub struct RowSnapshot {
    pub row: usize,
    pub text: [u8; COLS],
    pub cursor: Option<usize>,
}

pub struct Screen {
    console: Mutex<Console>,
    generation: watch::Sender<u64>,
}

impl Screen {
    pub fn new(host: &str) -> Self {
        let mut console = Console {
            host: host.to_owned(),
            cells: vec![b' '; COLS * ROWS],
            row_generation: [0; ROWS],
            generation: 0,
            cursor: (0, 0),
            prompt: Prompt::Login,
            typed: String::new(),
        };
        console.write(&format!(
            "Debian GNU/Linux 12 {host} tty1\n\n{host} login: "
        ));
        let (generation, _) = watch::channel(console.generation);
        Self {
            console: Mutex::new(console),
            generation,
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// A key went down. Returns whether the screen changed.
    pub fn key(&self, keysym: u32) -> bool {
        let mut console = lock(&self.console);
        let before = console.generation;
        console.key(keysym);
        let now = console.generation;
        drop(console);
        if now != before {
            self.generation.send_replace(now);
        }
        now != before
    }

    /// The rows that changed after generation `seen` (all rows for `None`), and the current
    /// generation to remember.
    pub fn rows_since(&self, seen: Option<u64>) -> (Vec<RowSnapshot>, u64) {
        let console = lock(&self.console);
        let rows = (0..ROWS)
            .filter(|&row| seen.is_none_or(|g| console.row_generation[row] > g))
            .map(|row| console.snapshot(row))
            .collect();
        (rows, console.generation)
    }

    /// The whole screen as text lines, trailing spaces trimmed (for tests and logs).
    pub fn text(&self) -> Vec<String> {
        let console = lock(&self.console);
        console
            .cells
            .chunks(COLS)
            .map(|line| String::from_utf8_lossy(line).trim_end().to_owned())
            .collect()
    }
}

impl Console {
    fn snapshot(&self, row: usize) -> RowSnapshot {
        let mut text = [b' '; COLS];
        text.copy_from_slice(&self.cells[row * COLS..(row + 1) * COLS]);
        RowSnapshot {
            row,
            text,
            cursor: (self.cursor.0 == row).then_some(self.cursor.1),
        }
    }

    fn touch(&mut self, row: usize) {
        self.generation += 1;
        self.row_generation[row] = self.generation;
    }

    fn key(&mut self, keysym: u32) {
        match keysym {
            KEY_RETURN | KEY_KP_ENTER => self.enter(),
            KEY_BACKSPACE => self.backspace(),
            0x20..=0x7e => self.type_char(keysym as u8),
            _ => {}
        }
    }

    fn type_char(&mut self, ch: u8) {
        if self.typed.len() >= 256 {
            return;
        }
        self.typed.push(char::from(ch));
        if self.prompt == Prompt::Login {
            self.put(ch);
        }
    }

    fn backspace(&mut self) {
        if self.typed.pop().is_none() || self.prompt != Prompt::Login {
            return;
        }
        let (row, col) = self.cursor;
        let (row, col) = match col {
            0 if row > 0 => (row - 1, COLS - 1),
            0 => return,
            _ => (row, col - 1),
        };
        self.cells[row * COLS + col] = b' ';
        self.touch(self.cursor.0);
        self.cursor = (row, col);
        self.touch(row);
    }

    /// The getty's answer to Return: ask for the password, then refuse it like a real login.
    fn enter(&mut self) {
        let typed = std::mem::take(&mut self.typed);
        let host = self.host.clone();
        match self.prompt {
            Prompt::Login if typed.is_empty() => self.write(&format!("\n{host} login: ")),
            Prompt::Login => {
                self.prompt = Prompt::Password;
                self.write("\nPassword: ");
            }
            Prompt::Password => {
                self.prompt = Prompt::Login;
                self.write(&format!("\n\nLogin incorrect\n{host} login: "));
            }
        }
    }

    fn write(&mut self, text: &str) {
        for byte in text.bytes() {
            match byte {
                b'\n' => self.newline(),
                _ => self.put(byte),
            }
        }
    }

    fn put(&mut self, byte: u8) {
        let (row, col) = self.cursor;
        self.cells[row * COLS + col] = byte;
        self.touch(row);
        if col + 1 == COLS {
            self.newline();
        } else {
            self.cursor = (row, col + 1);
            self.touch(row);
        }
    }

    fn newline(&mut self) {
        let old = self.cursor.0;
        if old + 1 < ROWS {
            self.cursor = (old + 1, 0);
            self.touch(old);
            self.touch(old + 1);
            return;
        }
        self.cells.copy_within(COLS.., 0);
        self.cells[(ROWS - 1) * COLS..].fill(b' ');
        self.cursor = (ROWS - 1, 0);
        for row in 0..ROWS {
            self.touch(row);
        }
    }
}

/// Whether pixel (x, y) of a row is ink, with the cursor drawn as an underline.
pub fn is_ink(row: &RowSnapshot, x: usize, y: usize) -> bool {
    let col = x / CELL_WIDTH;
    let Some(&ch) = row.text.get(col) else {
        return false;
    };
    let bits = cell_row(ch, y);
    let cursor = row.cursor == Some(col) && y >= CELL_HEIGHT - 2;
    cursor || bits & (0x80 >> (x % CELL_WIDTH)) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn type_text(screen: &Screen, text: &str) {
        for ch in text.chars() {
            let key = if ch == '\n' { KEY_RETURN } else { ch as u32 };
            screen.key(key);
        }
    }

    #[test]
    fn screen_shows_a_getty_and_echoes_the_login_name() {
        let screen = Screen::new("web-1");
        assert_eq!(
            screen.text()[..3],
            ["Debian GNU/Linux 12 web-1 tty1", "", "web-1 login:"]
        );
        type_text(&screen, "roox");
        screen.key(KEY_BACKSPACE);
        type_text(&screen, "t\nsecret\n");
        assert_eq!(
            screen.text()[2..7],
            [
                "web-1 login: root",
                "Password:",
                "",
                "Login incorrect",
                "web-1 login:"
            ]
        );
    }

    #[test]
    fn only_changed_rows_are_reported() {
        let screen = Screen::new("vm");
        let (all, generation) = screen.rows_since(None);
        assert_eq!(all.len(), ROWS);
        assert!(screen.rows_since(Some(generation)).0.is_empty());
        assert!(screen.key('a' as u32));
        assert!(!screen.key(0xffe1), "shift alone changes nothing");
        let (changed, _) = screen.rows_since(Some(generation));
        assert_eq!(changed.iter().map(|r| r.row).collect::<Vec<_>>(), [2]);
        assert_eq!(changed[0].cursor, Some("vm login: a".len()));
    }

    #[test]
    fn a_full_screen_scrolls() {
        let screen = Screen::new("vm");
        type_text(&screen, &"\n".repeat(ROWS));
        let text = screen.text();
        assert_eq!(text[ROWS - 1], "vm login:");
        assert_ne!(text[0], "Debian GNU/Linux 12 vm tty1");
    }

    #[test]
    fn glyph_pixels_and_cursor_are_ink() {
        let screen = Screen::new("vm");
        let (rows, _) = screen.rows_since(None);
        let first = &rows[0];
        // 'D' at column 0: its left stroke is pixel column 1.
        assert!(is_ink(first, 1, 0));
        assert!(!is_ink(first, 0, 0));
        let prompt = &rows[2];
        let cursor_x = "vm login: ".len() * CELL_WIDTH;
        assert!(is_ink(prompt, cursor_x, CELL_HEIGHT - 1));
        assert!(!is_ink(prompt, cursor_x, 0));
    }
}
