//! The firmware's sample sources (`firmware/sensor`, no_std), on the host: the LSM9DS1
//! driver against a mock I2C bus (every transaction checked: address, register, bytes),
//! the replay of recorded vectors, and the pacing and gravity-removal adapters.

use std::convert::Infallible;

use embedded_hal::delay::DelayNs;
use embedded_hal_mock::eh1::i2c::{Mock as I2cMock, Transaction as T};
use tinyssm_sensor::{
    AccelRange, Error, GyroRange, Lsm9ds1, Lsm9ds1Config, Odr, Paced, RemoveGravity, Replay,
    SampleSource, STANDARD_GRAVITY,
};

const ADDR: u8 = 0x6B;

/// The transactions of `Lsm9ds1::new` (after a WHO_AM_I of 0x68), ending with the two
/// configuration bytes given.
fn init(ctrl1_g: u8, ctrl6_xl: u8) -> Vec<T> {
    vec![
        T::write_read(ADDR, vec![0x0F], vec![0x68]),
        T::write(ADDR, vec![0x22, 0x44]),
        T::write(ADDR, vec![0x1E, 0x38]),
        T::write(ADDR, vec![0x1F, 0x38]),
        T::write(ADDR, vec![0x10, ctrl1_g]),
        T::write(ADDR, vec![0x20, ctrl6_xl]),
    ]
}

fn le(v: [i16; 3]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn lsm9ds1_default_config_writes_the_documented_registers() {
    // 119 Hz (ODR code 011), ±2000 °/s (FS_G 11), ±8 g (FS_XL 11).
    let cfg = Lsm9ds1Config::default();
    assert_eq!(
        cfg,
        Lsm9ds1Config {
            odr: Odr::Hz119,
            accel: AccelRange::G8,
            gyro: GyroRange::Dps2000
        }
    );
    let mut bus = I2cMock::new(&init(3 << 5 | 0b11 << 3, 3 << 5 | 0b11 << 3));
    let imu = Lsm9ds1::new(bus.clone(), ADDR, cfg).expect("init");
    assert_eq!(imu.config(), cfg);
    bus.done();
}

#[test]
fn lsm9ds1_encodes_every_rate_and_range() {
    for (odr, code) in [
        (Odr::Hz14_9, 1u8),
        (Odr::Hz59_5, 2),
        (Odr::Hz119, 3),
        (Odr::Hz238, 4),
        (Odr::Hz476, 5),
        (Odr::Hz952, 6),
    ] {
        for (accel, fs_xl) in [
            (AccelRange::G2, 0u8),
            (AccelRange::G16, 1),
            (AccelRange::G4, 2),
            (AccelRange::G8, 3),
        ] {
            for (gyro, fs_g) in [
                (GyroRange::Dps245, 0u8),
                (GyroRange::Dps500, 1),
                (GyroRange::Dps2000, 3),
            ] {
                let cfg = Lsm9ds1Config { odr, accel, gyro };
                let mut bus = I2cMock::new(&init(code << 5 | fs_g << 3, code << 5 | fs_xl << 3));
                Lsm9ds1::new(bus.clone(), ADDR, cfg).expect("init");
                bus.done();
            }
        }
    }
}

#[test]
fn lsm9ds1_refuses_another_device() {
    // A board revision with another IMU answers something else at WHO_AM_I (or nothing).
    let mut bus = I2cMock::new(&[T::write_read(ADDR, vec![0x0F], vec![0x24])]);
    let e = Lsm9ds1::new(bus.clone(), ADDR, Lsm9ds1Config::default()).err();
    assert_eq!(
        e,
        Some(Error::WrongDevice {
            got: 0x24,
            expected: 0x68
        })
    );
    assert_eq!(
        e.unwrap().to_string(),
        "unexpected device: WHO_AM_I 0x24, expected 0x68"
    );
    bus.done();

    let mut bus = I2cMock::new(&[T::write_read(ADDR, vec![0x0F], vec![0x00]).with_error(
        embedded_hal::i2c::ErrorKind::NoAcknowledge(
            embedded_hal::i2c::NoAcknowledgeSource::Address,
        ),
    )]);
    assert!(matches!(
        Lsm9ds1::new(bus.clone(), ADDR, Lsm9ds1Config::default()),
        Err(Error::Bus(_))
    ));
    bus.done();
}

#[test]
fn lsm9ds1_reads_accel_then_gyro_in_si_units() {
    let cfg = Lsm9ds1Config::default();
    let accel = [4096i16, -8192, 32767];
    let gyro = [1000i16, -1, -32768];
    let mut tx = init(0x78, 0x78);
    tx.push(T::write_read(ADDR, vec![0x28], le(accel)));
    tx.push(T::write_read(ADDR, vec![0x18], le(gyro)));
    tx.push(T::write_read(ADDR, vec![0x28], le(accel)));
    tx.push(T::write_read(ADDR, vec![0x18], le(gyro)));
    let mut bus = I2cMock::new(&tx);
    let mut imu = Lsm9ds1::new(bus.clone(), ADDR, cfg).expect("init");
    assert_eq!(<Lsm9ds1<I2cMock> as SampleSource>::CHANNELS, 6);
    let raw = imu.read_raw().expect("raw");
    assert_eq!(raw, [4096, -8192, 32767, 1000, -1, -32768]);
    let mut x = [f32::NAN; 7];
    imu.read(&mut x).expect("read");
    // ±8 g: 0.244 mg/LSB; ±2000 °/s: 70 m°/s per LSB.
    let a = 0.244e-3 * STANDARD_GRAVITY;
    let g = 70e-3f32.to_radians();
    for i in 0..3 {
        let want = accel[i] as f32 * a;
        assert!((x[i] - want).abs() <= 1e-5 * want.abs(), "{i}: {}", x[i]);
        let want = gyro[i] as f32 * g;
        assert!(
            (x[3 + i] - want).abs() <= 1e-5 * want.abs(),
            "{i}: {}",
            x[3 + i]
        );
    }
    // 4096 LSB at ±8 g is 0.999 g; -32768 LSB at ±2000 °/s is -2293.76 °/s = -40.0337 rad/s.
    assert!((x[0] - 0.999_424 * STANDARD_GRAVITY).abs() < 1e-4);
    assert!((x[5] + 40.0337).abs() < 1e-3, "{}", x[5]);
    assert!(x[6].is_nan(), "past CHANNELS untouched");
    // Too short an output: an error, no bus traffic.
    assert_eq!(
        imu.read(&mut [0.0; 5]),
        Err(Error::OutputTooShort { needed: 6, got: 5 })
    );
    imu.release();
    bus.done();
}

fn bytes(xs: &[f32]) -> Vec<u8> {
    xs.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn replay_streams_the_recording_bit_for_bit_then_ends() {
    let rec = [
        1.0f32,
        -0.0,
        f32::MIN_POSITIVE / 2.0,
        3.5,
        f32::INFINITY,
        -2.25,
    ];
    let b = bytes(&rec);
    assert!(
        Replay::<4>::new(&b).is_none(),
        "6 values are not whole 4-channel samples"
    );
    assert!(Replay::<0>::new(&b).is_none());
    let mut r = Replay::<3>::new(&b).expect("replay");
    assert_eq!((r.len(), r.remaining(), r.is_empty()), (2, 2, false));
    let mut x = [0f32; 3];
    let mut got = Vec::new();
    for _ in 0..2 {
        r.read(&mut x).expect("sample");
        got.extend(x);
    }
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&got), bits(&rec));
    assert_eq!(r.read(&mut x), Err(Error::<Infallible>::Exhausted));
    assert_eq!(
        r.read(&mut [0.0; 2]),
        Err(Error::OutputTooShort { needed: 3, got: 2 })
    );
    r.rewind();
    assert_eq!(r.remaining(), 2);
    r.read(&mut x).expect("again");
    assert_eq!(bits(&x), bits(&rec[..3]));
    assert!(Replay::<3>::new(&[]).is_some_and(|r| r.is_empty()));
}

/// Records every wait.
#[derive(Default)]
struct Waits(Vec<u64>);

impl DelayNs for Waits {
    fn delay_ns(&mut self, ns: u32) {
        self.0.push(ns as u64);
    }
    fn delay_us(&mut self, us: u32) {
        self.0.push(us as u64 * 1000);
    }
}

#[test]
fn paced_waits_one_period_before_each_read() {
    let rec = [1.0f32, 2.0, 3.0, 4.0];
    let b = bytes(&rec);
    let mut p = Paced::new(Replay::<2>::new(&b).unwrap(), Waits::default(), 10_000);
    assert_eq!(p.period_us(), 100_000, "10 Hz");
    let mut x = [0f32; 2];
    p.read(&mut x).unwrap();
    p.read(&mut x).unwrap();
    assert_eq!(x, [3.0, 4.0]);
    // A caller error does not wait.
    assert!(p.read(&mut [0.0]).is_err());
    let (_, waits) = p.release();
    assert_eq!(waits.0, vec![100_000_000, 100_000_000]);
    assert_eq!(
        Paced::new(Replay::<2>::new(&b).unwrap(), Waits::default(), 0).period_us(),
        0
    );
    assert_eq!(
        Paced::new(Replay::<2>::new(&b).unwrap(), Waits::default(), 119_000).period_us(),
        8403
    );
}

#[test]
fn remove_gravity_subtracts_a_low_pass_estimate_from_the_acceleration() {
    // A still sensor: gravity on z, some rotation. The output starts at zero and stays.
    let mut rec = Vec::new();
    for _ in 0..20 {
        rec.extend([0.0f32, 0.0, 9.8, 0.5, 0.0, 0.0]);
    }
    // Then a step of +2 m/s² on x: the output jumps by 2 and decays by α per sample.
    for _ in 0..5 {
        rec.extend([2.0f32, 0.0, 9.8, 0.5, 0.0, 0.0]);
    }
    let b = bytes(&rec);
    let mut s = RemoveGravity::new(Replay::<6>::new(&b).unwrap(), 0.8);
    let mut x = [0f32; 6];
    for _ in 0..20 {
        s.read(&mut x).unwrap();
        assert_eq!(x, [0.0, 0.0, 0.0, 0.5, 0.0, 0.0]);
    }
    assert_eq!(s.gravity(), [0.0, 0.0, 9.8]);
    let mut want = 2.0f32;
    for _ in 0..5 {
        s.read(&mut x).unwrap();
        want *= 0.8;
        assert!((x[0] - want).abs() < 1e-5, "{} vs {want}", x[0]);
        assert_eq!(x[3], 0.5, "gyro channels pass unchanged");
    }
    s.reset();
    assert_eq!(s.gravity(), [0.0; 3]);
}
