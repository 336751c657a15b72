//! `nano33ble`: activity recognition on an Arduino Nano 33 BLE (rev. 1: nRF52840 and an
//! on-board ST LSM9DS1).
//!
//! The on-board IMU is read through [`tinyssm_sensor::Lsm9ds1`] (TWIM0 at 400 kHz, SDA
//! P0.14, SCL P0.15, address 0x6B) at 10 Hz ([`tinyssm_sensor::Paced`] over TIMER1),
//! gravity is taken out of the acceleration ([`tinyssm_sensor::RemoveGravity`]), and
//! every sample steps `models/basicmotions-s4d.tssm` (S4D, 6 inputs, 4 classes) with
//! `Kernels::Reference`. As in training, a decision covers 100 steps (10 s) from the
//! initial state: at the end of each window the image prints the class and the four
//! logits over defmt-rtt, resets the state and starts the next window.
//!
//! Units: the model was trained on BasicMotions, whose accelerations are linear
//! acceleration in m/s² (gravity removed: a resting watch reads ≈ 0 on every axis) and
//! whose angular rates are in rad/s (they saturate at 34.9 rad/s, the 2000 °/s of the
//! recording watch's gyroscope). The driver converts to m/s² and rad/s; the gravity filter
//! does the rest. The board's axes are not the watch's: hold or strap it so that its
//! axes match the wrist (see firmware/README.md), or expect weaker decisions.
//!
//! Start-up errors (no IMU, wrong device) and read errors are printed and the image then
//! waits; a panic prints through panic-probe. Running it needs the hardware and a debug
//! probe: see firmware/README.md, "Flashing a real board".

#![no_std]
#![no_main]
#![deny(clippy::undocumented_unsafe_blocks)]

use cortex_m_rt::entry;
use defmt_rtt as _;
use embedded_hal::delay::DelayNs;
use panic_probe as _;

use nrf52840_hal::gpio::{p0, p1, DriveConfig, Level};
use nrf52840_hal::pac;
use nrf52840_hal::twim::{self, Twim};
use nrf52840_hal::Timer;
use tinyssm_core::{Input, Kernels, Model, StepError, Weights};
use tinyssm_sensor::{Lsm9ds1, Lsm9ds1Config, Paced, RemoveGravity, SampleSource};

mod model {
    include!(concat!(env!("OUT_DIR"), "/model.rs"));
}

/// Class names of the BasicMotions labels, in the model's output order.
const CLASSES: [&str; 4] = ["Standing", "Running", "Walking", "Badminton"];
/// Steps per decision: 10 s at 10 Hz, the length of a training case.
const WINDOW: usize = 100;
/// The sampling rate, in mHz.
const RATE_MILLIHZ: u32 = 10_000;
/// Low-pass coefficient of the gravity estimate (time constant ≈ 0.45 s at 10 Hz).
const GRAVITY_ALPHA: f32 = 0.8;

#[entry]
fn main() -> ! {
    // cortex-m-rt turns these into `&'static mut` borrows, taken once before anything
    // else runs: no `static mut` is touched directly.
    static mut STATE: [f32; model::STATE_LEN] = [0.0; model::STATE_LEN];
    static mut SCRATCH: [f32; model::SCRATCH_LEN] = [0.0; model::SCRATCH_LEN];
    static mut OUT: [f32; model::D_OUTPUT] = [0.0; model::D_OUTPUT];
    // Every tensor's view, resolved once at start-up (`Model::with_views`).
    static mut VIEWS: [Weights<'static>; model::N_TENSORS] = [Weights::EMPTY; model::N_TENSORS];
    run(STATE, SCRATCH, OUT, VIEWS);
    loop {
        cortex_m::asm::wfi();
    }
}

/// Sets up the board and classifies window after window; returns only on an error.
fn run(
    state: &mut [f32],
    scratch: &mut [f32],
    out: &mut [f32],
    views: &'static mut [Weights<'static>],
) {
    // The host's numerics: round to nearest, subnormals kept, NaNs propagated (the reset
    // value of FPSCR is not fixed by the architecture; QEMU starts with these).
    let mut fpscr = cortex_m::register::fpscr::read();
    fpscr.set_fz(false);
    fpscr.set_dn(false);
    fpscr.set_rmode(cortex_m::register::fpscr::RMode::Nearest);
    // SAFETY: only the rounding and flush modes change, before any float arithmetic of
    // this image; no other code depends on the previous modes.
    unsafe { cortex_m::register::fpscr::write(fpscr) };

    let Some(p) = pac::Peripherals::take() else {
        defmt::println!("error: peripherals already taken");
        return;
    };
    let port0 = p0::Parts::new(p.P0);
    let port1 = p1::Parts::new(p.P1);
    // Power for the on-board sensors (VDD_ENV, P0.22) and the pull-ups of their I2C bus
    // (P1.00), both driven high as the board's own start-up code does.
    let _vdd_env = port0
        .p0_22
        .into_push_pull_output_drive(Level::High, DriveConfig::HighDrive0HighDrive1);
    let _pullups = port1
        .p1_00
        .into_push_pull_output_drive(Level::High, DriveConfig::Standard0HighDrive1);
    let mut timer = Timer::new(p.TIMER0);
    // The LSM9DS1 needs about 10 ms after power-up before it answers.
    timer.delay_ms(50u32);

    let model = match Model::parse(&model::BLOB.0) {
        Ok(m) => m.with_kernels(Kernels::Reference),
        Err(e) => {
            defmt::println!("error: model: {}", defmt::Display2Format(&e));
            return;
        }
    };
    if model.crc32() != model::MODEL_CRC32 {
        defmt::println!(
            "error: model crc {=u32:#010x}, built for {=u32:#010x}",
            model.crc32(),
            model::MODEL_CRC32
        );
        return;
    }
    let model = match model.with_views(views) {
        Ok(m) => m,
        Err(e) => {
            defmt::println!("error: views: {}", defmt::Display2Format(&e));
            return;
        }
    };
    defmt::println!(
        "tinyssm on the Nano 33 BLE: basicmotions-s4d.tssm ({=usize} bytes, crc32 {=u32:#010x}), {=usize} steps per decision at 10 Hz",
        model::BLOB.0.len(),
        model.crc32(),
        WINDOW
    );

    let pins = twim::Pins {
        scl: port0.p0_15.into_floating_input().degrade(),
        sda: port0.p0_14.into_floating_input().degrade(),
    };
    let i2c = Twim::new(p.TWIM0, pins, twim::Frequency::K400);
    let imu = match Lsm9ds1::new(i2c, 0x6B, Lsm9ds1Config::default()) {
        Ok(imu) => imu,
        Err(e) => {
            defmt::println!(
                "error: LSM9DS1 at 0x6B: {} (a rev. 2 board carries another IMU)",
                defmt::Debug2Format(&e)
            );
            return;
        }
    };
    let mut source = Paced::new(
        RemoveGravity::new(imu, GRAVITY_ALPHA),
        Timer::new(p.TIMER1),
        RATE_MILLIHZ,
    );

    let mut x = [0.0f32; model::D_INPUT];
    'windows: for window in 0u32.. {
        if let Err(e) = model.reset(state) {
            defmt::println!("error: reset: {}", defmt::Display2Format(&e));
            return;
        }
        for _ in 0..WINDOW {
            if let Err(e) = source.read(&mut x) {
                defmt::println!("error: IMU: {}", defmt::Debug2Format(&e));
                return;
            }
            match model.step(Input::Vector(&x), state, scratch, out) {
                Ok(()) => {}
                // A bad reading (NaN from the sensor path) or an overflow: the step has
                // refused it or reset the stream; drop this window and go on.
                Err(e @ (StepError::NonFiniteInput { .. } | StepError::Overflow)) => {
                    defmt::println!(
                        "window {=u32} dropped: {}",
                        window,
                        defmt::Display2Format(&e)
                    );
                    continue 'windows;
                }
                Err(e) => {
                    defmt::println!("error: step: {}", defmt::Display2Format(&e));
                    return;
                }
            }
        }
        let y = &out[..model.d_output()];
        let best = y
            .iter()
            .enumerate()
            .fold(0, |b, (i, v)| if *v > y[b] { i } else { b });
        defmt::println!(
            "window {=u32}: {=str} (class {=usize}), logits {}",
            window,
            CLASSES.get(best).copied().unwrap_or("?"),
            best,
            y
        );
    }
}
