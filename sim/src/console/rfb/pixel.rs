//! RFB pixel formats (RFC 6143 §7.4): the 16-byte description on the wire, and conversion of
//! 0x00RRGGBB colours to and from a format's pixel bytes. Only true-colour formats are supported;
//! QEMU's colour-map mode is not needed by any client Porthole cares about.

/// A true-colour pixel format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelFormat {
    pub bits_per_pixel: u8,
    pub depth: u8,
    pub big_endian: bool,
    pub red_max: u16,
    pub green_max: u16,
    pub blue_max: u16,
    pub red_shift: u8,
    pub green_shift: u8,
    pub blue_shift: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PixelFormatError {
    #[error("{0} bits per pixel is not supported (8, 16 or 32)")]
    BitsPerPixel(u8),
    #[error("colour-map pixel formats are not supported")]
    ColourMap,
    #[error("a colour channel has a zero maximum or does not fit the pixel")]
    Channel,
}

impl PixelFormat {
    /// 32 bpp, depth 24, little endian, 8 bits per channel: what QEMU offers.
    pub const RGB888: Self = Self {
        bits_per_pixel: 32,
        depth: 24,
        big_endian: false,
        red_max: 255,
        green_max: 255,
        blue_max: 255,
        red_shift: 16,
        green_shift: 8,
        blue_shift: 0,
    };

    pub fn bytes_per_pixel(&self) -> usize {
        usize::from(self.bits_per_pixel / 8)
    }

    pub fn to_wire(&self) -> [u8; 16] {
        let [rh, rl] = self.red_max.to_be_bytes();
        let [gh, gl] = self.green_max.to_be_bytes();
        let [bh, bl] = self.blue_max.to_be_bytes();
        [
            self.bits_per_pixel,
            self.depth,
            u8::from(self.big_endian),
            1,
            rh,
            rl,
            gh,
            gl,
            bh,
            bl,
            self.red_shift,
            self.green_shift,
            self.blue_shift,
            0,
            0,
            0,
        ]
    }

    pub fn from_wire(wire: &[u8; 16]) -> Result<Self, PixelFormatError> {
        let u16_at = |i: usize| u16::from_be_bytes([wire[i], wire[i + 1]]);
        let format = Self {
            bits_per_pixel: wire[0],
            depth: wire[1],
            big_endian: wire[2] != 0,
            red_max: u16_at(4),
            green_max: u16_at(6),
            blue_max: u16_at(8),
            red_shift: wire[10],
            green_shift: wire[11],
            blue_shift: wire[12],
        };
        if !matches!(format.bits_per_pixel, 8 | 16 | 32) {
            return Err(PixelFormatError::BitsPerPixel(format.bits_per_pixel));
        }
        if wire[3] == 0 {
            return Err(PixelFormatError::ColourMap);
        }
        let fits = |max: u16, shift: u8| {
            max != 0
                && u32::from(shift) + (16 - max.leading_zeros()) <= u32::from(format.bits_per_pixel)
        };
        if !(fits(format.red_max, format.red_shift)
            && fits(format.green_max, format.green_shift)
            && fits(format.blue_max, format.blue_shift))
        {
            return Err(PixelFormatError::Channel);
        }
        Ok(format)
    }

    /// Appends the pixel bytes of colour `rgb` (0x00RRGGBB).
    pub fn encode(&self, rgb: u32, out: &mut Vec<u8>) {
        let scale = |value: u32, max: u16| value * u32::from(max) / 255;
        let value = (scale((rgb >> 16) & 0xff, self.red_max) << self.red_shift)
            | (scale((rgb >> 8) & 0xff, self.green_max) << self.green_shift)
            | (scale(rgb & 0xff, self.blue_max) << self.blue_shift);
        let bytes = if self.big_endian {
            value.to_be_bytes()
        } else {
            value.to_le_bytes()
        };
        match (self.bytes_per_pixel(), self.big_endian) {
            (n, false) => out.extend_from_slice(&bytes[..n]),
            (n, true) => out.extend_from_slice(&bytes[4 - n..]),
        }
    }

    /// The colour (0x00RRGGBB) of one pixel's bytes; `bytes` has `bytes_per_pixel` bytes.
    pub fn decode(&self, bytes: &[u8]) -> u32 {
        let value = bytes.iter().enumerate().fold(0u32, |acc, (i, &b)| {
            if self.big_endian {
                (acc << 8) | u32::from(b)
            } else {
                acc | (u32::from(b) << (8 * i))
            }
        });
        let channel = |shift: u8, max: u16| {
            let max = u32::from(max.max(1));
            ((value >> shift) & max) * 255 / max
        };
        (channel(self.red_shift, self.red_max) << 16)
            | (channel(self.green_shift, self.green_max) << 8)
            | channel(self.blue_shift, self.blue_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_round_trips() {
        let wire = PixelFormat::RGB888.to_wire();
        assert_eq!(PixelFormat::from_wire(&wire), Ok(PixelFormat::RGB888));
        let mut colour_map = wire;
        colour_map[3] = 0;
        assert_eq!(
            PixelFormat::from_wire(&colour_map),
            Err(PixelFormatError::ColourMap)
        );
    }

    #[test]
    fn colours_encode_in_the_clients_format() {
        let mut out = Vec::new();
        PixelFormat::RGB888.encode(0x0011_2233, &mut out);
        assert_eq!(out, [0x33, 0x22, 0x11, 0x00]);
        let rgb565_be = PixelFormat {
            bits_per_pixel: 16,
            depth: 16,
            big_endian: true,
            red_max: 31,
            green_max: 63,
            blue_max: 31,
            red_shift: 11,
            green_shift: 5,
            blue_shift: 0,
        };
        out.clear();
        rgb565_be.encode(0x00ff_0000, &mut out);
        assert_eq!(out, [0xf8, 0x00]);
        assert_eq!(rgb565_be.decode(&out), 0x00ff_0000);
        assert_eq!(
            PixelFormat::RGB888.decode(&[0x33, 0x22, 0x11, 0]),
            0x0011_2233
        );
    }
}
