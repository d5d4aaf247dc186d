//! WebSocket frames built byte by byte, including ones no library would send (unmasked,
//! reserved opcodes, RSV bits, oversized or fragmented control frames), for the tests that
//! check how the gateway refuses them.

/// One frame's header fields and payload.
#[derive(Clone, Debug)]
pub struct RawFrame {
    pub fin: bool,
    /// The three RSV bits (0..=7).
    pub rsv: u8,
    /// The 4-bit opcode.
    pub opcode: u8,
    /// Clients must mask; `None` sends the frame unmasked.
    pub mask: Option<[u8; 4]>,
    pub payload: Vec<u8>,
}

pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

impl RawFrame {
    /// A final, masked frame (mask key zero: valid, and it leaves the payload as is).
    pub fn new(opcode: u8, payload: impl Into<Vec<u8>>) -> RawFrame {
        RawFrame {
            fin: true,
            rsv: 0,
            opcode,
            mask: Some([0; 4]),
            payload: payload.into(),
        }
    }

    /// The header alone (everything before the payload).
    pub fn header(&self) -> Vec<u8> {
        self.header_announcing(self.payload.len() as u64)
    }

    /// A header that announces `len` payload bytes, whatever the payload holds: for a
    /// frame whose bytes are then streamed (or never end).
    pub fn header_announcing(&self, len: u64) -> Vec<u8> {
        let mut out = vec![(u8::from(self.fin) << 7) | ((self.rsv & 7) << 4) | (self.opcode & 0xF)];
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        if len < 126 {
            out.push(mask_bit | len as u8);
        } else if len <= u64::from(u16::MAX) {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(mask_bit | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
        if let Some(key) = self.mask {
            out.extend_from_slice(&key);
        }
        out
    }

    /// The whole frame on the wire, the payload masked with the key.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.header();
        match self.mask {
            Some(key) => out.extend(self.payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4])),
            None => out.extend_from_slice(&self.payload),
        }
        out
    }
}

/// A close frame's payload: the code, then the reason bytes.
pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut out = code.to_be_bytes().to_vec();
    out.extend_from_slice(reason);
    out
}
