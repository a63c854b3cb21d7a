//! The board's serial port: UART0 of the MPS2 boards, an ARM CMSDK APB UART. It is read
//! by polling; its receive interrupt only wakes the core from `wfi` when a byte arrives.
//!
//! QEMU hands the UART a byte from its character device (a pseudo-terminal) only when the
//! receive register is empty, so a slow reader loses nothing: the bytes wait on the host.

/// Where UART0's registers are.
const BASE: usize = 0x4000_4000;
/// Read: the byte received. Write: the byte to send.
const DATA: usize = 0x00;
/// Bit 0: the transmit register is full. Bit 1: the receive register holds a byte.
const STATE: usize = 0x04;
/// Bit 0: transmitter on. Bit 1: receiver on.
const CTRL: usize = 0x08;
/// Write 1s to clear interrupts: bit 0 transmit, bit 1 receive, bits 2 and 3 overruns.
const INTCLEAR: usize = 0x0C;
/// Baud divider: the APB clock over the baud rate, 16 at least.
const BAUDDIV: usize = 0x10;

/// Transmitter on, receiver on, receive interrupt on.
const ENABLE: u32 = 0b1011;

/// UART0's receive interrupt in the NVIC.
pub const RX_IRQ: i16 = 0;

const TX_FULL: u32 = 1 << 0;
const RX_FULL: u32 = 1 << 1;

/// UART0, on and polled.
pub struct Uart(());

impl Uart {
    /// Turns UART0's transmitter and receiver on at the fastest rate (the APB clock over
    /// 16; an emulator does not pace the line), with its receive interrupt.
    pub fn take(nvic: &mut cortex_m::peripheral::NVIC) -> Uart {
        let uart = Uart(());
        uart.write(BAUDDIV, 16);
        uart.write(CTRL, ENABLE);
        // SAFETY: the interrupt's handler (`clear_interrupts`, from the default handler)
        // only clears the UART's interrupt flags; it shares no data with this code.
        unsafe { nvic.iser[0].write(1 << RX_IRQ) };
        uart
    }

    /// The byte received, if one is waiting.
    pub fn read_byte(&mut self) -> Option<u8> {
        (self.read(STATE) & RX_FULL != 0).then(|| self.read(DATA) as u8)
    }

    /// Sends `bytes`, each as soon as the transmit register is free.
    pub fn write_all(&mut self, bytes: &[u8]) {
        for &b in bytes {
            while self.read(STATE) & TX_FULL != 0 {}
            self.write(DATA, u32::from(b));
        }
    }

    /// Clears the UART's interrupt flags: the receive interrupt has woken the core, and the
    /// byte waits in the receive register for the loop.
    pub fn clear_interrupts() {
        Uart(()).write(INTCLEAR, 0b1111);
    }

    fn read(&self, reg: usize) -> u32 {
        // SAFETY: `BASE + reg` is one of UART0's word-aligned registers, which exist on
        // every MPS2 board; reading them has no effect beyond the UART's.
        unsafe { core::ptr::read_volatile((BASE + reg) as *const u32) }
    }

    fn write(&self, reg: usize, value: u32) {
        // SAFETY: as in `read`; the loop writes DATA, CTRL and BAUDDIV, the interrupt
        // handler INTCLEAR only.
        unsafe { core::ptr::write_volatile((BASE + reg) as *mut u32, value) }
    }
}
