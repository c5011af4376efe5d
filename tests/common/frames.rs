//! Frames of the serial protocols, as a test device sends them.

/// A Nonin Data Format #8 frame (protocols.md §5.6): status, HR, SpO2, status 2.
pub fn df8(hr: u8, spo2: u8) -> [u8; 4] {
    [0x80, hr & 0x7F, spo2 & 0x7F, 0x00]
}

/// A Nonin Data Format #2 packet (protocols.md §5.2): 25 checksummed frames carrying the
/// display-formatted HR and SpO2.
pub fn df2_packet(hr: u16, spo2: u8) -> Vec<u8> {
    let mut packet = Vec::new();
    for index in 1..=25u8 {
        let float = match index {
            20 => ((hr >> 7) & 0x03) as u8, // HR-D MSB
            21 => (hr & 0x7F) as u8,        // HR-D LSB
            9 => spo2 & 0x7F,               // SpO2-D
            1 => ((hr >> 7) & 0x03) as u8,  // HR MSB
            2 => (hr & 0x7F) as u8,         // HR LSB
            3 => spo2 & 0x7F,               // SpO2
            _ => 0,
        };
        // Status: bit 7 always, SYNC on frame 1, green perfusion (GPRF) on the rest.
        let status: u8 = if index == 1 { 0x81 } else { 0x82 };
        let pleth = 0x40;
        let check = 0x01u8
            .wrapping_add(status)
            .wrapping_add(pleth)
            .wrapping_add(float);
        packet.extend_from_slice(&[0x01, status, pleth, float, check]);
    }
    packet
}
