// Stillflow motion overlay: direction colours, animated streaks, the mask outline and the swaying
// regions' oscillation, drawn with alpha blending over the image. Needs preview_common.glsl before
// it. Body only: the consumer's prelude declares the inputs.
//
// Inputs:
//   uv              vec2   texture coordinate of this fragment, 0..1 across the image
//   image_tex, motion_tex, mask_tex, speed   as in preview_common.glsl (image_tex gives the size)
//   time_frames     float  playback time in loop frames (seconds x fps), frames
//   max_speed       float  speed * S * M magnitude shown fully saturated, image px/frame
//   streak_spacing  float  distance between streak centres, image px
//   streak_period   float  frames one streak travels before it fades and restarts, frames
//   streak_trail    float  length of a streak's tail, in frames of motion, frames
//   outline_px      float  half-width of the mask outline, image px (about one screen pixel)
//   opacity         float  overall opacity of the overlay, 0..1
//   overlay_layers  int    bit 0 = direction colours, bit 1 = streaks, bit 2 = mask outline,
//                          bit 3 = sway colours, bit 4 = swing marks
//   sway_tex, sway_cycles, frames   the swaying regions' layers and the loop length, as in preview_common.glsl
//   sway_max        float  oscillation |P| shown fully saturated, image px (the regions' largest amplitude)
//   shimmer_tex     sampler2D  (w, h) R = the shimmering regions' share in [0, 1], any resolution
// Output:
//   FragColor       vec4   straight (not premultiplied) colour and alpha
//
// Colours: hue = direction on screen (0 = right = red, 90 deg = up = yellow-green, 180 = left =
// cyan, 270 = down = violet), saturation = |speed * S * M| / max_speed. Streak heads move at the
// motion's own speed, one image pixel per px/frame per frame, so they show direction and speed.
// Sway: the oscillation P(t) = A u sin(2 pi k t / N + phi) of stages/sway.py at the playback time,
// in the same colours (hue = the way the sway moves the content now, saturation = |P| / sway_max),
// so the colour swings between opposite hues and a gust's wave travels across the region; the swing
// marks put a white dot in each streak cell that swings with the cell centre's P(t) (0.4 cell at
// the largest |P|) around a faint mark at its rest. Shimmer is drawn in dots (every other cell of about 2 screen
// px) so it reads apart from a sway.

vec3 sf_hsv_to_rgb(float hue, float saturation, float value)
{
    vec3 k = mod(vec3(5.0, 3.0, 1.0) + hue * 6.0, 6.0);
    return value - value * saturation * clamp(min(k, 4.0 - k), 0.0, 1.0);
}

// Pseudo-random phase in [0, 1) per streak cell, so streaks do not pulse in lockstep.
float sf_cell_phase(ivec2 cell)
{
    return fract(sin(dot(vec2(cell), vec2(12.9898, 78.233))) * 43758.5453);
}

// Streak coverage at image pixel y, 0..1: the brightest of the streaks in the nearby cells.
float sf_streaks(vec2 y)
{
    ivec2 home = ivec2(floor(y / streak_spacing));
    float coverage = 0.0;
    for (int dy = -2; dy <= 2; ++dy) {
        for (int dx = -2; dx <= 2; ++dx) {
            ivec2 cell = home + ivec2(dx, dy);
            vec2 centre = (vec2(cell) + 0.5) * streak_spacing - 0.5;
            vec2 velocity = sf_motion_at(centre);
            if (dot(velocity, velocity) < 1e-8) {
                continue;
            }
            float age = fract(time_frames / streak_period + sf_cell_phase(cell)) * streak_period;
            vec2 head = centre + velocity * (age - 0.5 * streak_period);
            vec2 tail = head - velocity * streak_trail;
            vec2 along = head - tail;
            float s = clamp(dot(y - tail, along) / dot(along, along), 0.0, 1.0);
            float distance_px = length(y - (tail + s * along));
            float line = clamp(1.5 - distance_px, 0.0, 1.0);
            float fade = sin(3.14159265 * age / streak_period);
            // Brighter towards the head: the bright end shows where the content goes.
            coverage = max(coverage, line * fade * (0.25 + 0.75 * s));
        }
    }
    return coverage;
}

// Straight-alpha `top` over `bottom`.
vec4 sf_over(vec4 top, vec4 bottom)
{
    float a = top.a + bottom.a * (1.0 - top.a);
    if (a <= 0.0) {
        return vec4(0.0);
    }
    return vec4((top.rgb * top.a + bottom.rgb * bottom.a * (1.0 - top.a)) / a, a);
}

// 1 where the mask crosses one half within outline_px of y, else 0.
float sf_outline(vec2 y)
{
    float lo = 1.0;
    float hi = 0.0;
    for (int k = 0; k < 4; ++k) {
        vec2 offset = outline_px * vec2(cos(0.25 * SF_TAU * float(k)), sin(0.25 * SF_TAU * float(k)));
        float m = sf_mask_bilinear(y + offset);
        lo = min(lo, m);
        hi = max(hi, m);
    }
    return (lo < 0.5 && hi >= 0.5) ? 1.0 : 0.0;
}

// The shimmering regions' share at image pixel p, by nearest lookup (shimmer_tex at any resolution).
float sf_shimmer_at(vec2 p)
{
    ivec2 size = textureSize(shimmer_tex, 0);
    vec2 q = sf_rescale(p, textureSize(image_tex, 0), size);
    ivec2 texel = ivec2(sf_round_even(q.x), sf_round_even(q.y));
    return texelFetch(shimmer_tex, sf_reflect2(texel, size), 0).r;
}

// The sway layers' angles at the playback time.
vec4 sf_sway_angles_now()
{
    float whole = floor(time_frames);
    return sf_sway_angles(int(whole), time_frames - whole);
}

// Coverage 0..1 of a disc of `radius` image px around `centre` at y, its edge smoothed over a screen px.
float sf_disc(vec2 y, vec2 centre, float radius)
{
    float screen_px = max(outline_px, 1e-3);
    return clamp((radius - length(y - centre)) / screen_px + 0.5, 0.0, 1.0);
}

// Whether image pixel y sways (reach > 0), and its oscillation P(t) now.
bool sf_sways_at(vec2 y, vec4 angles, out vec2 now)
{
    ivec2 texel = sf_reflect2(ivec2(floor(y + 0.5)), textureSize(image_tex, 0));
    vec2 d, swing, rest;
    float reach;
    sf_sway(texel, angles, d, swing, rest, now, reach);
    return reach > 0.0;
}

// The swing marks at image pixel y, straight RGBA: in y's streak cell, where its centre sways, a
// white dot at the centre moved by 0.4 cell * P(t) / sway_max over a faint mark at the rest.
vec4 sf_swings(vec2 y, vec4 angles)
{
    vec2 centre = (floor(y / streak_spacing) + 0.5) * streak_spacing - 0.5;
    vec2 now;
    if (!sf_sways_at(centre, angles, now)) {
        return vec4(0.0);
    }
    vec2 swung = centre + 0.4 * streak_spacing * now / max(sway_max, 1e-6);
    float dot_alpha = sf_disc(y, swung, 2.0 * outline_px);
    return sf_over(vec4(1.0, 1.0, 1.0, dot_alpha), vec4(1.0, 1.0, 1.0, 0.4 * sf_disc(y, centre, outline_px)));
}

// The swaying regions' colour at image pixel y (0 where nothing sways), straight alpha.
vec4 sf_sway_tint(vec2 y, vec4 angles)
{
    vec2 now;
    if (!sf_sways_at(y, angles, now)) {
        return vec4(0.0);
    }
    if (sf_shimmer_at(y) >= 0.5) {
        vec2 cell = fract((y + 0.5) / (4.0 * max(outline_px, 1.0)));
        if (cell.x >= 0.5 || cell.y >= 0.5) {
            return vec4(0.0);
        }
    }
    float shown = length(now);
    float hue = shown > 0.0 ? fract(atan(now.y, now.x) / SF_TAU) : 0.0;
    float saturation = clamp(shown / max(sway_max, 1e-6), 0.0, 1.0);
    return vec4(sf_hsv_to_rgb(hue, saturation, 1.0), 0.3 + 0.4 * saturation);
}

void main()
{
    vec2 y = sf_pixel_position(uv);
    vec4 colour = vec4(0.0);
    if ((overlay_layers & 1) != 0) {
        vec2 velocity = sf_motion_at(y);
        float magnitude = length(velocity);
        if (magnitude > 0.0) {
            float hue = fract(atan(velocity.y, velocity.x) / SF_TAU);
            float saturation = clamp(magnitude / max(max_speed, 1e-6), 0.0, 1.0);
            colour = vec4(sf_hsv_to_rgb(hue, saturation, 1.0), 0.6);
        }
    }
    if ((overlay_layers & 24) != 0 && any(notEqual(sway_cycles, ivec4(0)))) {
        vec4 angles = sf_sway_angles_now();
        if ((overlay_layers & 8) != 0) {
            colour = sf_over(sf_sway_tint(y, angles), colour);
        }
        if ((overlay_layers & 16) != 0) {
            colour = sf_over(sf_swings(y, angles), colour);
        }
    }
    if ((overlay_layers & 2) != 0) {
        colour = sf_over(vec4(1.0, 1.0, 1.0, sf_streaks(y)), colour);
    }
    if ((overlay_layers & 4) != 0) {
        colour = sf_over(vec4(1.0, 0.85, 0.1, sf_outline(y)), colour);
    }
    FragColor = vec4(colour.rgb, colour.a * opacity);
}
