//! The keys of presentation mode, taken out of egui's input in the order they
//! came (so "1", "2", Enter in one frame is a jump to 12) before the views see
//! them: what a presentation clicker sends (PageDown/PageUp, sometimes B or
//! `.` for blank) and the keyboard's arrows, space, digits, Enter and Esc.

use egui::{Event, Key, Modifiers};

/// A key presentation mode acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresentKey {
    Next,
    Previous,
    Digit(u8),
    Backspace,
    Enter,
    Blank,
    Escape,
    ZoomIn,
    ZoomOut,
}

/// Take this frame's presentation keys out of `ctx`'s input. Nothing is
/// taken while a text field has the keyboard (the typing is the user's).
pub fn take(ctx: &egui::Context) -> Vec<PresentKey> {
    if ctx.egui_wants_keyboard_input() {
        return Vec::new();
    }
    let mut keys = Vec::new();
    ctx.input_mut(|input| {
        input.events.retain(|event| match classify(event) {
            Some(key) => {
                keys.push(key);
                false
            }
            None => true,
        });
    });
    keys
}

/// The presentation key of one input event, if it is one.
pub fn classify(event: &Event) -> Option<PresentKey> {
    let Event::Key {
        key,
        pressed: true,
        modifiers,
        ..
    } = event
    else {
        return None;
    };
    // Ctrl/Cmd/Alt combinations stay the app's (Ctrl + + is egui's own zoom).
    if modifiers.ctrl || modifiers.command || modifiers.alt || modifiers.mac_cmd {
        return None;
    }
    let plain = *modifiers == Modifiers::NONE;
    Some(match key {
        Key::ArrowRight | Key::PageDown | Key::Space if plain => PresentKey::Next,
        Key::ArrowLeft | Key::PageUp if plain => PresentKey::Previous,
        Key::Enter => PresentKey::Enter,
        Key::Backspace => PresentKey::Backspace,
        Key::Escape => PresentKey::Escape,
        Key::B | Key::Period if plain => PresentKey::Blank,
        Key::Plus | Key::Equals => PresentKey::ZoomIn,
        Key::Minus => PresentKey::ZoomOut,
        other => PresentKey::Digit(digit(*other)?),
    })
}

fn digit(key: Key) -> Option<u8> {
    const DIGITS: [Key; 10] = [
        Key::Num0,
        Key::Num1,
        Key::Num2,
        Key::Num3,
        Key::Num4,
        Key::Num5,
        Key::Num6,
        Key::Num7,
        Key::Num8,
        Key::Num9,
    ];
    DIGITS.iter().position(|&k| k == key).map(|d| d as u8)
}
